package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Daemon holds the settings of herald.cfg. The zero value is not useful;
// start from DefaultDaemon.
type Daemon struct {
	// File is the path the settings came from ("" for pure defaults).
	File string `json:"file,omitempty"`

	Hostname       string           `json:"hostname"`
	SMTPListen     []netip.AddrPort `json:"smtp-listen"`
	HTTPListen     []netip.AddrPort `json:"http-listen"`
	SMTPAllow      []netip.Prefix   `json:"smtp-allow"`
	MaxMessageSize int64            `json:"max-message-size"` // bytes
	MaxRecipients  int              `json:"max-recipients"`
	// MaxHeaderSize (bytes) and MaxHeaderFields bound a mail's header
	// block at SMTP time (552 5.3.4 above them).
	MaxHeaderSize   int64         `json:"max-header-size"`
	MaxHeaderFields int           `json:"max-header-fields"`
	SMTPTimeout     time.Duration `json:"smtp-timeout"`
	// SpoolDir is "" unless set: the caller derives STATE/spool.
	SpoolDir string `json:"spool-dir,omitempty"`
	// NotificationsFile and NotificationsPrivFile override where
	// notifications.cfg and its private file are read ("" = config dir).
	NotificationsFile     string `json:"notifications-file,omitempty"`
	NotificationsPrivFile string `json:"notifications-priv-file,omitempty"`
	// DatacenterFile is Proxmox's node settings (/etc/pve/datacenter.cfg,
	// PBS: /etc/proxmox-backup/node.cfg): default from-address and HTTP
	// proxy, read when herald shares Proxmox's files ("" = none).
	DatacenterFile string `json:"datacenter-file,omitempty"`
	Flavor         Flavor `json:"flavor"`
	// Relay is the smarthost host:port for sendmail targets ("" = none).
	Relay             string        `json:"relay,omitempty"`
	RelayMode         string        `json:"relay-mode,omitempty"` // insecure|starttls|tls
	RelayUsername     string        `json:"relay-username,omitempty"`
	RelayPasswordFile string        `json:"relay-password-file,omitempty"`
	MaxDeliveryAge    time.Duration `json:"max-delivery-age"`
	// DeliveryConcurrency bounds the remote targets delivered to at once
	// (delivery.Options.Concurrency).
	DeliveryConcurrency int `json:"delivery-concurrency"`
	// MailDir holds local users' mailboxes (MAILDIR/USER) for sendmail
	// targets delivering locally ("" = STATE/mail).
	MailDir string `json:"mail-dir,omitempty"`
	// AliasesFile is the aliases(5) file local recipients of mail targets
	// go through.
	AliasesFile string `json:"aliases-file"`
	// MailboxHelper is the socket of the privileged helper that creates
	// users' mailboxes ("" = /run/herald/mbox.sock, herald-mbox.socket).
	MailboxHelper string `json:"mailbox-helper,omitempty"`

	// ClassifiersDisable names built-in mail classifiers not to run.
	ClassifiersDisable []string `json:"classifiers-disable,omitempty"`
	// HistoryRetention and HistoryMaxSize bound the event history (0: the
	// history package's defaults, 30d and 64M).
	HistoryRetention time.Duration `json:"history-retention,omitempty"`
	HistoryMaxSize   int64         `json:"history-max-size,omitempty"`

	// The MTA settings of mta.go: mail-name, relay-ca-file, relay-verify.
	MTA
	// Limits bound sessions, rates and disk use (limits.go).
	Limits Limits `json:"limits"`
}

// Defaults of herald.cfg, in one place.
const (
	DefaultMaxMessageSize      = 32 << 20
	DefaultMaxRecipients       = 100
	DefaultMaxHeaderSize       = 1 << 20
	DefaultMaxHeaderFields     = 10000
	DefaultSMTPTimeout         = 5 * time.Minute
	DefaultMaxDeliveryAge      = 5 * 24 * time.Hour
	DefaultDeliveryConcurrency = 16
)

// DefaultDaemon returns the settings herald uses when herald.cfg is
// missing. Hostname is the system's host name up to the first dot.
func DefaultDaemon() *Daemon {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host, _, _ = strings.Cut(host, ".")
	return &Daemon{
		Hostname: host,
		SMTPListen: []netip.AddrPort{
			netip.MustParseAddrPort("127.0.0.1:25"),
			netip.MustParseAddrPort("[::1]:25"),
		},
		HTTPListen:          []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8025")},
		MaxMessageSize:      DefaultMaxMessageSize,
		MaxRecipients:       DefaultMaxRecipients,
		MaxHeaderSize:       DefaultMaxHeaderSize,
		MaxHeaderFields:     DefaultMaxHeaderFields,
		SMTPTimeout:         DefaultSMTPTimeout,
		Flavor:              FlavorPVE,
		MaxDeliveryAge:      DefaultMaxDeliveryAge,
		DeliveryConcurrency: DefaultDeliveryConcurrency,
		AliasesFile:         DefaultAliasesFile,
		Limits:              DefaultLimits(),
	}
}

// DefaultAliasesFile is Debian's aliases file.
const DefaultAliasesFile = "/etc/aliases"

// LoadDaemon reads herald.cfg. A missing file yields the defaults; any
// problem is reported as Diagnostics (FILE:LINE: message), all at once.
func LoadDaemon(path string) (*Daemon, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultDaemon(), nil
	}
	if err != nil {
		return nil, Diagnostics{{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}}
	}
	return ParseDaemon(path, data)
}

// daemonKey parses one herald.cfg key into d. list keys may repeat: the
// first occurrence replaces the default list, later ones append.
type daemonKey struct {
	list  bool
	parse func(d *Daemon, v string, first bool) string // reason, "" = ok
}

var daemonKeys = map[string]daemonKey{
	"hostname": {parse: func(d *Daemon, v string, _ bool) string {
		if !validDNSName(v) {
			return "must be a host name"
		}
		d.Hostname = v
		return ""
	}},
	"smtp-listen": {list: true, parse: func(d *Daemon, v string, first bool) string {
		return parseListen(&d.SMTPListen, v, first)
	}},
	"http-listen": {list: true, parse: func(d *Daemon, v string, first bool) string {
		return parseListen(&d.HTTPListen, v, first)
	}},
	"smtp-allow": {list: true, parse: func(d *Daemon, v string, first bool) string {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return "must be an address or a CIDR prefix such as 192.0.2.0/24"
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if first {
			d.SMTPAllow = nil
		}
		d.SMTPAllow = append(d.SMTPAllow, p.Masked())
		return ""
	}},
	"max-message-size": {parse: func(d *Daemon, v string, _ bool) string {
		n, ok := parseSize(v)
		if !ok {
			return "must be a positive size in bytes, optionally with K, M or G (powers of 1024)"
		}
		d.MaxMessageSize = n
		return ""
	}},
	"max-recipients": {parse: func(d *Daemon, v string, _ bool) string {
		return parseInt(&d.MaxRecipients, v, 1, 100000)
	}},
	"max-header-size": {parse: func(d *Daemon, v string, _ bool) string {
		n, ok := parseSize(v)
		if !ok || n < 1024 {
			return "must be a size of at least 1K, optionally with K, M or G (powers of 1024)"
		}
		d.MaxHeaderSize = n
		return ""
	}},
	"max-header-fields": {parse: func(d *Daemon, v string, _ bool) string {
		return parseInt(&d.MaxHeaderFields, v, 10, 1000000)
	}},
	"smtp-timeout": {parse: func(d *Daemon, v string, _ bool) string {
		return parseDurationKey(&d.SMTPTimeout, v)
	}},
	"spool-dir":               {parse: absPathKey(func(d *Daemon) *string { return &d.SpoolDir })},
	"notifications-file":      {parse: absPathKey(func(d *Daemon) *string { return &d.NotificationsFile })},
	"notifications-priv-file": {parse: absPathKey(func(d *Daemon) *string { return &d.NotificationsPrivFile })},
	"datacenter-file":         {parse: absPathKey(func(d *Daemon) *string { return &d.DatacenterFile })},
	"flavor": {parse: func(d *Daemon, v string, _ bool) string {
		f, err := ParseFlavor(v)
		if err != nil {
			return "must be pve or pbs"
		}
		d.Flavor = f
		return ""
	}},
	"relay": {parse: func(d *Daemon, v string, _ bool) string {
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			// A host without a port: the port follows relay-mode.
			host, port = strings.Trim(v, "[]"), ""
		}
		if host == "" {
			return "must be host or host:port, e.g. smtp.example.com:587"
		}
		if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535) {
			return "has an invalid port"
		}
		if _, err := netip.ParseAddr(host); err != nil && !validDNSName(host) {
			return "has an invalid host"
		}
		d.Relay = v
		return ""
	}},
	"relay-mode": {parse: func(d *Daemon, v string, _ bool) string {
		if r := checkEnum("insecure", "starttls", "tls")(v); r != "" {
			return r
		}
		d.RelayMode = v
		return ""
	}},
	"relay-username": {parse: func(d *Daemon, v string, _ bool) string {
		d.RelayUsername = v
		return ""
	}},
	"relay-password-file": {parse: absPathKey(func(d *Daemon) *string { return &d.RelayPasswordFile })},
	"max-delivery-age": {parse: func(d *Daemon, v string, _ bool) string {
		return parseDurationKey(&d.MaxDeliveryAge, v)
	}},
	"delivery-concurrency": {parse: func(d *Daemon, v string, _ bool) string {
		return parseInt(&d.DeliveryConcurrency, v, 1, 1024)
	}},
	"mail-dir":       {parse: absPathKey(func(d *Daemon) *string { return &d.MailDir })},
	"aliases-file":   {parse: absPathKey(func(d *Daemon) *string { return &d.AliasesFile })},
	"mailbox-helper": {parse: absPathKey(func(d *Daemon) *string { return &d.MailboxHelper })},
}

func parseListen(dst *[]netip.AddrPort, v string, first bool) string {
	if first {
		*dst = nil
	}
	if v == "none" {
		return ""
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return "must be ADDRESS:PORT such as 127.0.0.1:25 or [::1]:25 (or none)"
	}
	*dst = append(*dst, ap)
	return ""
}

func parseInt(dst *int, v string, lo, hi int) string {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Sprintf("must be a whole number from %d to %d", lo, hi)
	}
	*dst = n
	return ""
}

func absPathKey(field func(*Daemon) *string) func(*Daemon, string, bool) string {
	return func(d *Daemon, v string, _ bool) string {
		if !filepath.IsAbs(v) {
			return "must be an absolute path"
		}
		*field(d) = filepath.Clean(v)
		return ""
	}
}

// parseSize parses bytes with an optional K, M or G suffix (1024-based).
func parseSize(v string) (int64, bool) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "K") || strings.HasSuffix(v, "k"):
		mult, v = 1<<10, v[:len(v)-1]
	case strings.HasSuffix(v, "M") || strings.HasSuffix(v, "m"):
		mult, v = 1<<20, v[:len(v)-1]
	case strings.HasSuffix(v, "G") || strings.HasSuffix(v, "g"):
		mult, v = 1<<30, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, false
	}
	return n * mult, true
}

// ParseDuration parses a Go duration ("90s", "1h30m") that may start with a
// whole number of days ("5d", "1d12h"), since retention is naturally said
// in days.
func ParseDuration(v string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(v, 'd'); i > 0 {
		n, err := strconv.Atoi(v[:i])
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("invalid duration %q", v)
		}
		days, v = time.Duration(n)*24*time.Hour, v[i+1:]
		if v == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	return days + d, nil
}

func parseDurationKey(dst *time.Duration, v string) string {
	d, err := ParseDuration(v)
	if err != nil || d <= 0 {
		return "must be a positive duration such as 90s, 5m, 2h or 5d"
	}
	*dst = d
	return ""
}

// ParseDaemon parses herald.cfg content: `key value` lines, blank lines and
// '#' comment lines. Unknown keys, repeated single-value keys and invalid
// values are errors.
func ParseDaemon(name string, data []byte) (*Daemon, error) {
	var ds Diagnostics
	d := diags{list: &ds, file: name}
	cfg := DefaultDaemon()
	cfg.File = name
	seen := map[string]int{}
	for i, line := range splitLines(data) {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k := strings.IndexFunc(line, unicode.IsSpace)
		if k < 0 {
			d.errf(n, "'%s' has no value (write: key value)", line)
			continue
		}
		key, value := line[:k], strings.TrimSpace(line[k:])
		def, ok := daemonKeys[key]
		if !ok {
			d.errf(n, "unknown setting '%s'", key)
			continue
		}
		first, dup := seen[key]
		if dup && !def.list {
			d.errf(n, "duplicate setting '%s' (already set on line %d)", key, first)
			continue
		}
		if !dup {
			seen[key] = n
		}
		if hasControl(value) {
			d.errf(n, "value of '%s' contains a control character", key)
			continue
		}
		if reason := def.parse(cfg, value, !dup); reason != "" {
			d.errf(n, "invalid %s %q: %s", key, value, reason)
		}
	}
	// Cross-key checks.
	if l, ok := seen["relay-username"]; ok && cfg.RelayPasswordFile == "" {
		d.errf(l, "relay-username needs relay-password-file")
	}
	if l, ok := seen["relay-password-file"]; ok && cfg.RelayUsername == "" {
		d.errf(l, "relay-password-file needs relay-username")
	}
	if _, ok := seen["relay"]; !ok {
		for _, k := range []string{"relay-mode", "relay-username", "relay-password-file", "relay-ca-file", "relay-verify"} {
			if l, ok := seen[k]; ok {
				d.errf(l, "%s is set but relay is not", k)
			}
		}
	} else if cfg.Relay != "" && cfg.RelayMode == "" {
		// Port 465 is implicit TLS; everything else (25, 587) speaks
		// STARTTLS, which we then require.
		cfg.RelayMode = "starttls"
		if _, port, _ := net.SplitHostPort(cfg.Relay); port == "465" {
			cfg.RelayMode = "tls"
		}
	}
	if len(ds) > 0 {
		ds.sort([]string{name})
		return nil, ds
	}
	return cfg, nil
}
