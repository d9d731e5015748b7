package config

import (
	"strings"
	"time"
)

// Limits are herald.cfg's bounds on what one input may cost the daemon:
// SMTP sessions, their duration and mail rate, the names the HTTP API
// answers to, and the disk space the spool may use. Every field has a
// default (DefaultLimits); the keys are listed in the package comment.
type Limits struct {
	// SMTPMaxSessions caps concurrent SMTP sessions; one more is answered
	// 421 and closed (Postfix: default_process_limit).
	SMTPMaxSessions int `json:"smtp-max-sessions"`
	// SMTPMaxSessionsPerClient caps concurrent sessions from one client: a
	// local user for loopback peers, else an address (Postfix:
	// smtpd_client_connection_count_limit).
	SMTPMaxSessionsPerClient int `json:"smtp-max-sessions-per-client"`
	// SMTPSessionTime bounds a whole SMTP session, however busy: a client
	// trickling one byte at a time is cut off at this point.
	SMTPSessionTime time.Duration `json:"smtp-session-time"`
	// SMTPMailsPerMinute bounds the mails one connection may start per
	// minute; beyond it the session is answered 421 and closed.
	SMTPMailsPerMinute int `json:"smtp-mails-per-minute"`
	// FDReserve is how many file descriptors are kept free of SMTP sessions
	// for the spool, the delivery queue, the HTTP API and /healthz.
	FDReserve int `json:"fd-reserve"`
	// HTTPHosts are names, besides localhost and IP literals, that the HTTP
	// API accepts in a request's Host header.
	HTTPHosts []string `json:"http-host,omitempty"`
	// SpoolMinFree is the free space the spool's file system must keep:
	// below it submissions are refused as temporary failures (Postfix:
	// queue_minfree). Root's submissions may use the lower half of it.
	SpoolMinFree int64 `json:"spool-min-free"`
	// SpoolMaxPerUID bounds the bytes one local user (not root) may have
	// waiting in the maildrop.
	SpoolMaxPerUID int64 `json:"spool-max-per-uid"`
	// QuarantineMaxAge and QuarantineMaxSize bound spool/quarantine/: older
	// files, then the oldest beyond the size, are removed (with a log line).
	QuarantineMaxAge  time.Duration `json:"quarantine-max-age"`
	QuarantineMaxSize int64         `json:"quarantine-max-size"`
}

// Defaults of the limits, in one place.
const (
	DefaultSMTPMaxSessions          = 100
	DefaultSMTPMaxSessionsPerClient = 50
	DefaultSMTPSessionTime          = 10 * time.Minute
	DefaultSMTPMailsPerMinute       = 600
	DefaultFDReserve                = 64
	DefaultSpoolMinFree             = 64 << 20
	DefaultSpoolMaxPerUID           = 256 << 20
	DefaultQuarantineMaxAge         = 30 * 24 * time.Hour
	DefaultQuarantineMaxSize        = 256 << 20
)

// DefaultLimits returns the limits herald uses when herald.cfg sets none.
func DefaultLimits() Limits {
	return Limits{
		SMTPMaxSessions:          DefaultSMTPMaxSessions,
		SMTPMaxSessionsPerClient: DefaultSMTPMaxSessionsPerClient,
		SMTPSessionTime:          DefaultSMTPSessionTime,
		SMTPMailsPerMinute:       DefaultSMTPMailsPerMinute,
		FDReserve:                DefaultFDReserve,
		SpoolMinFree:             DefaultSpoolMinFree,
		SpoolMaxPerUID:           DefaultSpoolMaxPerUID,
		QuarantineMaxAge:         DefaultQuarantineMaxAge,
		QuarantineMaxSize:        DefaultQuarantineMaxSize,
	}
}

func init() {
	for k, v := range limitKeys {
		daemonKeys[k] = v
	}
}

var limitKeys = map[string]daemonKey{
	"smtp-max-sessions": {parse: func(d *Daemon, v string, _ bool) string {
		return parseInt(&d.Limits.SMTPMaxSessions, v, 1, 100000)
	}},
	"smtp-max-sessions-per-client": {parse: func(d *Daemon, v string, _ bool) string {
		return parseInt(&d.Limits.SMTPMaxSessionsPerClient, v, 1, 100000)
	}},
	"smtp-session-time": {parse: func(d *Daemon, v string, _ bool) string {
		return parseDurationKey(&d.Limits.SMTPSessionTime, v)
	}},
	"smtp-mails-per-minute": {parse: func(d *Daemon, v string, _ bool) string {
		return parseInt(&d.Limits.SMTPMailsPerMinute, v, 1, 1000000)
	}},
	"fd-reserve": {parse: func(d *Daemon, v string, _ bool) string {
		return parseInt(&d.Limits.FDReserve, v, 16, 100000)
	}},
	"http-host": {list: true, parse: func(d *Daemon, v string, first bool) string {
		v = strings.ToLower(strings.TrimSuffix(v, "."))
		if !validDNSName(v) {
			return "must be a host name"
		}
		if first {
			d.Limits.HTTPHosts = nil
		}
		d.Limits.HTTPHosts = append(d.Limits.HTTPHosts, v)
		return ""
	}},
	"spool-min-free": {parse: func(d *Daemon, v string, _ bool) string {
		return parseSizeKey(&d.Limits.SpoolMinFree, v)
	}},
	"spool-max-per-uid": {parse: func(d *Daemon, v string, _ bool) string {
		return parseSizeKey(&d.Limits.SpoolMaxPerUID, v)
	}},
	"quarantine-max-age": {parse: func(d *Daemon, v string, _ bool) string {
		return parseDurationKey(&d.Limits.QuarantineMaxAge, v)
	}},
	"quarantine-max-size": {parse: func(d *Daemon, v string, _ bool) string {
		return parseSizeKey(&d.Limits.QuarantineMaxSize, v)
	}},
}

func parseSizeKey(dst *int64, v string) string {
	n, ok := parseSize(v)
	if !ok {
		return "must be a positive size in bytes, optionally with K, M or G (powers of 1024)"
	}
	*dst = n
	return ""
}
