// Package smtp is the smtp notification target: it sends each event as a
// mail through an SMTP server (go-smtp client), in one of Proxmox's three
// modes — insecure (port 25), starttls (587, STARTTLS required) or tls
// (465, implicit TLS) — with optional AUTH PLAIN or LOGIN. Normal events
// are composed by mailout.Compose; forwarded system mail is re-headed by
// mailout.ForwardSMTP. The sendmail target reuses Send to reach its
// smarthost.
//
// Errors are classified for the delivery queue (target.ClassifySMTP): 4xx
// replies and connection failures are temporary, 5xx replies and
// configuration mistakes (no STARTTLS where it is required, no usable AUTH
// mechanism) permanent. The password never appears in an error, a Reply or
// a log line: it is kept unexported and every text taken from the server is
// scrubbed of it.
package smtp

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailout"
	"herald/internal/target"
)

// Modes, as Proxmox names them.
const (
	ModeInsecure = "insecure"
	ModeSTARTTLS = "starttls"
	ModeTLS      = "tls"
)

// Defaults. Proxmox (lettre) uses 5 s for everything; a whole send gets 30 s
// here because a relay may be slow to accept DATA (content scanning), while
// a server that does not even accept the connection within 10 s is down.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultDialTimeout = 10 * time.Second
	DefaultAuthor      = "herald"
)

// Options configure a Target.
type Options struct {
	Server   string        // host name or IP address
	Port     int           // 0: by mode (insecure 25, starttls 587, tls 465)
	Mode     string        // insecure | starttls | tls; "" = tls
	Username string        // AUTH user; "" = no AUTH
	Password config.Secret // AUTH password

	From     string   // envelope sender and From address; a bare "root" is qualified with Hostname
	Author   string   // From display name; "" = "herald"
	To       []string // recipients, already resolved (directory.Recipients)
	Hostname string   // EHLO name and qualifying domain; "" = os.Hostname()
	// Recipients, when set, resolves the recipients per event and replaces
	// To (mailto-field, aliases).
	Recipients target.Recipients

	Timeout     time.Duration // whole send; 0 = DefaultTimeout
	DialTimeout time.Duration // TCP connect; 0 = DefaultDialTimeout
	TLSConfig   *tls.Config   // nil = system roots, ServerName = Server
	Log         *slog.Logger  // nil = discard
}

// String describes o without the password.
func (o Options) String() string {
	pw := ""
	if !o.Password.IsEmpty() {
		pw = " password=<secret>"
	}
	return fmt.Sprintf("smtp{server=%s port=%d mode=%s username=%q%s from=%q to=%q}",
		o.Server, o.Port, o.Mode, o.Username, pw, o.From, o.To)
}

// GoString is String, so that %#v cannot print the password either.
func (o Options) GoString() string { return o.String() }

// LogValue keeps the password out of structured logs.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// Target sends events through one SMTP server.
type Target struct {
	host, addr  string
	mode        string
	username    string
	password    config.Secret
	from        string
	author      string
	to          []string
	recipients  target.Recipients
	hostname    string
	timeout     time.Duration
	dialTimeout time.Duration
	tlsConfig   *tls.Config
	log         *slog.Logger
}

// New checks opt and returns the target. Configuration mistakes are errors
// here rather than failures at every delivery.
func New(opt Options) (*Target, error) {
	t := &Target{
		host:        strings.TrimSpace(opt.Server),
		mode:        opt.Mode,
		username:    opt.Username,
		password:    opt.Password,
		author:      opt.Author,
		recipients:  opt.Recipients,
		hostname:    opt.Hostname,
		timeout:     opt.Timeout,
		dialTimeout: opt.DialTimeout,
		log:         opt.Log,
	}
	if t.host == "" {
		return nil, errors.New("smtp: server is not set")
	}
	if t.mode == "" {
		t.mode = ModeTLS
	}
	port := opt.Port
	switch t.mode {
	case ModeInsecure:
		port = orDefault(port, 25)
	case ModeSTARTTLS:
		port = orDefault(port, 587)
	case ModeTLS:
		port = orDefault(port, 465)
	default:
		return nil, fmt.Errorf("smtp: mode %q is not one of insecure, starttls, tls", opt.Mode)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("smtp: port %d out of range", port)
	}
	t.addr = net.JoinHostPort(t.host, strconv.Itoa(port))
	if t.username != "" && t.password.IsEmpty() {
		// Proxmox's wording.
		return nil, errors.New("smtp: username is set but no password was provided")
	}
	if t.username == "" && !t.password.IsEmpty() {
		return nil, errors.New("smtp: password is set but no username")
	}
	if t.username != "" && t.mode == ModeInsecure && !isLoopbackHost(t.host) {
		return nil, fmt.Errorf("smtp: refusing to send the password for %q unencrypted to %s: use mode starttls or tls (AUTH without TLS is allowed to loopback only)", t.username, t.host)
	}
	if strings.ContainsAny(t.username+t.password.Reveal(), "\r\n") {
		return nil, errors.New("smtp: username or password contains a line break")
	}
	if t.hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("smtp: no hostname given and os.Hostname failed: %w", err)
		}
		t.hostname = h
	}
	if strings.ContainsAny(t.hostname, "\r\n \t") {
		return nil, fmt.Errorf("smtp: hostname %q is not a valid EHLO name", t.hostname)
	}
	if t.author == "" {
		t.author = DefaultAuthor
	}
	if t.timeout <= 0 {
		t.timeout = DefaultTimeout
	}
	if t.dialTimeout <= 0 {
		t.dialTimeout = DefaultDialTimeout
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	from := opt.From
	if from == "" {
		from = "root" // Proxmox's default from-address
	}
	t.from = Qualify(from, t.hostname)
	if err := checkAddress(t.from); err != nil {
		return nil, fmt.Errorf("smtp: from-address: %w", err)
	}
	for _, r := range opt.To {
		r = Qualify(strings.TrimSpace(r), t.hostname)
		if err := checkAddress(r); err != nil {
			return nil, fmt.Errorf("smtp: recipient: %w", err)
		}
		if !slices.Contains(t.to, r) {
			t.to = append(t.to, r)
		}
	}
	if opt.TLSConfig != nil {
		t.tlsConfig = opt.TLSConfig.Clone()
	} else {
		t.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if t.tlsConfig.ServerName == "" {
		t.tlsConfig.ServerName = t.host
	}
	return t, nil
}

// secretForms reveals the forms in which the password could travel, and so
// could be echoed back by a broken server, for masking them wherever they
// appear; none without a password.
func (t *Target) secretForms() []string {
	pw := t.password.Reveal()
	if pw == "" {
		return nil
	}
	return []string{
		"\x00" + t.username + "\x00" + pw,
		base64.StdEncoding.EncodeToString([]byte("\x00" + t.username + "\x00" + pw)),
		base64.StdEncoding.EncodeToString([]byte(pw)),
		pw,
	}
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// String names the target's server and mode (never the credentials).
func (t *Target) String() string { return "smtp://" + t.addr + " (" + t.mode + ")" }

// GoString is String: %#v of a Target would otherwise print its unexported
// fields, the password's forms among them (fmt cannot call Secret's own
// methods on an unexported field).
func (t *Target) GoString() string { return t.String() }

// LogValue keeps the credentials out of structured logs.
func (t *Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Recipients returns the qualified recipient list.
func (t *Target) Recipients() []string { return slices.Clone(t.to) }

// Qualify appends "@hostname" to a bare local part, as Postfix's myorigin
// does: Proxmox's default from-address is plain "root", which no relay
// accepts as is.
func Qualify(addr, hostname string) string {
	if addr == "" || strings.Contains(addr, "@") || hostname == "" {
		return addr
	}
	return addr + "@" + hostname
}

func checkAddress(a string) error {
	if a == "" {
		return errors.New("empty address")
	}
	for _, c := range a {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return fmt.Errorf("address %q contains white space, a control character or angle brackets", a)
		}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// IsSystemMail reports whether ev is forwarded system mail, which mail
// targets pass on (re-headed) instead of composing.
func IsSystemMail(ev *event.Event) bool {
	return ev.Mail != nil && ev.Type() == "system-mail"
}

// Deliver sends ev to the configured recipients.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	to, off, err := target.ResolveRecipients(ctx, t.recipients, t.to, ev, checkAddress)
	if err != nil {
		return err
	}
	if t.recipients != nil {
		to = qualifyAll(to, t.hostname)
	}
	if len(to) == 0 {
		if off {
			t.log.Info("smtp: nobody to mail: the account's warnings are off", "event", ev.ID)
			return nil
		}
		return target.Permanent(errors.New("smtp: no recipients (every mailto-user without an address?)"))
	}
	date := ev.Timestamp
	if date.IsZero() {
		date = time.Now()
	}
	hdr := mailout.Header{From: t.from, Author: t.author, To: to, Hostname: t.hostname, Date: date}
	var msg []byte
	if IsSystemMail(ev) {
		msg = mailout.ForwardSMTP(ev, hdr)
	} else {
		msg = mailout.Compose(ev, hdr)
	}
	return t.Send(ctx, t.from, to, msg)
}

// qualifyAll qualifies bare names and drops duplicates.
func qualifyAll(to []string, hostname string) []string {
	var out []string
	for _, r := range to {
		r = Qualify(r, hostname)
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
