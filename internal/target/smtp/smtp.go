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
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

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
	secrets     []string
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
	if pw := t.password.Reveal(); pw != "" {
		// The forms in which the password could travel, and so could be
		// echoed back by a broken server: masked wherever they appear.
		t.secrets = []string{
			"\x00" + t.username + "\x00" + pw,
			base64.StdEncoding.EncodeToString([]byte("\x00" + t.username + "\x00" + pw)),
			base64.StdEncoding.EncodeToString([]byte(pw)),
			pw,
		}
	}
	return t, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// String names the target's server and mode (never the credentials).
func (t *Target) String() string { return "smtp://" + t.addr + " (" + t.mode + ")" }

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

// Send runs one SMTP transaction: msg from from to rcpts. It returns nil
// when the server accepted the message for every recipient. When some
// recipients were refused permanently and the others accepted, the message
// goes to those others and the error (permanent) names the refused ones; when
// any recipient was refused temporarily, nothing is sent and the error is
// temporary, so that a retry reaches everyone exactly once.
func (t *Target) Send(ctx context.Context, from string, rcpts []string, msg []byte) error {
	if len(rcpts) == 0 {
		return target.Permanent(errors.New("smtp: no recipients"))
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()

	dialer := &net.Dialer{Timeout: t.dialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return t.fail(ctx, "connect", err)
	}
	// go-smtp has no context support: closing the connection when ctx ends
	// aborts whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer func() {
		stop()
		_ = conn.Close() // already closed after QUIT; the error says nothing
	}()

	c, isTLS, err := t.open(ctx, conn)
	if err != nil {
		return err
	}
	// Only a backstop: ctx (closing the connection) bounds the whole send.
	c.CommandTimeout = t.timeout + time.Second
	c.SubmissionTimeout = t.timeout + time.Second
	if err := c.Hello(t.hostname); err != nil {
		return t.fail(ctx, "EHLO", err)
	}
	if t.username != "" {
		if err := t.auth(ctx, c, conn, isTLS); err != nil {
			return err
		}
	}

	var opts *gosmtp.MailOptions
	if !isASCII(from) || !allASCII(rcpts) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			// Retrying will not teach the server SMTPUTF8.
			return target.Permanent(&sendError{msg: fmt.Sprintf("smtp %s: an address is not ASCII and the server does not offer SMTPUTF8", t.addr)})
		}
		opts = &gosmtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(from, opts); err != nil {
		return t.fail(ctx, "MAIL FROM:<"+from+">", err)
	}
	var accepted []string
	var refused []string // "rcpt: reply"
	var tempErr, permErr error
	for _, r := range rcpts {
		err := c.Rcpt(r, nil)
		if err == nil {
			accepted = append(accepted, r)
			continue
		}
		var se *gosmtp.SMTPError
		if !errors.As(err, &se) {
			return t.fail(ctx, "RCPT TO:<"+r+">", err) // connection trouble
		}
		refused = append(refused, r+": "+t.reply(se))
		if se.Code >= 400 && se.Code < 500 {
			tempErr = t.fail(ctx, "RCPT TO:<"+r+">", err)
		} else if permErr == nil {
			permErr = t.fail(ctx, "RCPT TO:<"+r+">", err)
		}
	}
	if tempErr != nil || len(accepted) == 0 {
		t.abort(c)
		if tempErr != nil {
			return tempErr
		}
		if len(refused) == 1 {
			return permErr
		}
		return &target.Error{
			Err:   &sendError{msg: fmt.Sprintf("smtp %s: every recipient refused: %s", t.addr, strings.Join(refused, "; "))},
			Reply: target.Reply(permErr),
		}
	}

	w, err := c.Data()
	if err != nil {
		return t.fail(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return t.fail(ctx, "DATA", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return t.fail(ctx, "end of DATA", err)
	}
	t.log.Debug("smtp: message accepted", "server", t.addr, "recipients", accepted, "reply", t.scrub(resp.StatusText))
	// The message is accepted: a failing QUIT must not cause a retry (and a
	// duplicate).
	if err := c.Quit(); err != nil {
		t.log.Debug("smtp: QUIT after accepted message failed", "server", t.addr, "err", t.scrub(err.Error()))
	}
	if len(refused) > 0 {
		return &target.Error{
			Err: &sendError{msg: fmt.Sprintf("smtp %s: sent to %s, but refused for %s", t.addr,
				strings.Join(accepted, ", "), strings.Join(refused, "; "))},
			Reply: target.Reply(permErr),
		}
	}
	return nil
}

// open greets the server in the configured mode and returns a client ready
// for EHLO with our hostname.
func (t *Target) open(ctx context.Context, conn net.Conn) (*gosmtp.Client, bool, error) {
	switch t.mode {
	case ModeTLS:
		tc := tls.Client(conn, t.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, false, t.fail(ctx, "TLS handshake", err)
		}
		return gosmtp.NewClient(tc), true, nil
	case ModeSTARTTLS:
		tc, err := t.startTLS(ctx, conn)
		if err != nil {
			return nil, false, err
		}
		return gosmtp.NewClient(tc), true, nil
	default:
		return gosmtp.NewClient(conn), false, nil
	}
}

// startTLS runs the plaintext part of a STARTTLS session by hand: go-smtp's
// NewClientStartTLS sends "EHLO localhost" before TLS, and a relay may reject
// that name. It returns the TLS connection, wrapped so that go-smtp reads the
// greeting it expects (the real one came before STARTTLS).
func (t *Target) startTLS(ctx context.Context, conn net.Conn) (net.Conn, error) {
	tp := textproto.NewConn(conn)
	// Deliberately not tp.Close(): the caller owns conn.
	code, greeting, err := tp.ReadResponse(220)
	if err != nil {
		return nil, t.fail(ctx, "greeting", protoErr(code, greeting, err))
	}
	id, err := tp.Cmd("EHLO %s", t.hostname)
	if err != nil {
		return nil, t.fail(ctx, "EHLO", err)
	}
	tp.StartResponse(id)
	code, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		return nil, t.fail(ctx, "EHLO", protoErr(code, msg, err))
	}
	offered := false
	for _, line := range strings.Split(msg, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		// A configuration mistake (wrong port or mode), not a passing state.
		return nil, target.Permanent(&sendError{
			msg: fmt.Sprintf("smtp %s: server does not offer STARTTLS, which mode starttls requires (wrong port or mode?)", t.addr),
		})
	}
	id, err = tp.Cmd("STARTTLS")
	if err != nil {
		return nil, t.fail(ctx, "STARTTLS", err)
	}
	tp.StartResponse(id)
	code, msg, err = tp.ReadResponse(220)
	tp.EndResponse(id)
	if err != nil {
		return nil, t.fail(ctx, "STARTTLS", protoErr(code, msg, err))
	}
	if tp.R.Buffered() > 0 {
		// Plaintext pipelined after the 220 would be taken as coming from
		// inside TLS (CVE-2011-0411-style injection).
		return nil, t.fail(ctx, "STARTTLS", errors.New("server sent data after its STARTTLS reply"))
	}
	tc := tls.Client(conn, t.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, t.fail(ctx, "TLS handshake", err)
	}
	return &greetedConn{Conn: tc, pending: []byte("220 " + t.host + " greeted before STARTTLS\r\n")}, nil
}

// greetedConn replays a greeting before the connection's real data, so that a
// fresh go-smtp client can take over a session after STARTTLS.
type greetedConn struct {
	net.Conn
	pending []byte
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// protoErr turns a textproto reply error into go-smtp's type, so that
// classification sees the code.
func protoErr(code int, msg string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &gosmtp.SMTPError{Code: te.Code, Message: te.Msg}
	}
	if code != 0 && err != nil {
		return &gosmtp.SMTPError{Code: code, Message: msg}
	}
	return err
}

// auth authenticates with PLAIN, or LOGIN when that is all the server offers.
func (t *Target) auth(ctx context.Context, c *gosmtp.Client, conn net.Conn, isTLS bool) error {
	if !isTLS {
		// New allowed this only for a loopback name; make sure it is one.
		ap, err := netipAddr(conn.RemoteAddr())
		if err != nil || !ap.IsLoopback() {
			return target.Permanent(&sendError{msg: fmt.Sprintf("smtp %s: refusing AUTH without TLS to a non-loopback address", t.addr)})
		}
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return target.Permanent(&sendError{msg: fmt.Sprintf("smtp %s: a username is configured but the server does not offer AUTH", t.addr)})
	}
	var client sasl.Client
	switch list := strings.Fields(strings.ToUpper(mechs)); {
	case slices.Contains(list, sasl.Plain):
		client = sasl.NewPlainClient("", t.username, t.password.Reveal())
	case slices.Contains(list, sasl.Login):
		client = &loginClient{user: t.username, pass: t.password.Reveal()}
	default:
		return target.Permanent(&sendError{msg: fmt.Sprintf("smtp %s: server offers AUTH %s, none of which herald speaks (PLAIN, LOGIN)", t.addr, t.scrub(mechs))})
	}
	if err := c.Auth(client); err != nil {
		return t.fail(ctx, "AUTH", err)
	}
	return nil
}

func netipAddr(a net.Addr) (net.IP, error) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("not a TCP address: %v", a)
	}
	return ta.IP, nil
}

// loginClient speaks AUTH LOGIN. go-sasl's client sends the user name as an
// initial response and accepts only the exact challenge "Password:"; real
// servers also ask "Username:" first, in varying case, so this one answers by
// the challenge's text and falls back to the order of the draft.
type loginClient struct {
	user, pass string
	step       int
}

func (a *loginClient) Start() (string, []byte, error) { return sasl.Login, nil, nil }

func (a *loginClient) Next(challenge []byte) ([]byte, error) {
	a.step++
	c := strings.ToLower(string(challenge))
	switch {
	case strings.HasPrefix(c, "user"):
		return []byte(a.user), nil
	case strings.HasPrefix(c, "pass"):
		return []byte(a.pass), nil
	case a.step == 1:
		return []byte(a.user), nil
	case a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected AUTH LOGIN challenge")
}

// abort ends a transaction that sent no data; errors only matter to the log.
func (t *Target) abort(c *gosmtp.Client) {
	if err := c.Reset(); err != nil {
		t.log.Debug("smtp: RSET failed", "server", t.addr, "err", t.scrub(err.Error()))
		return
	}
	if err := c.Quit(); err != nil {
		t.log.Debug("smtp: QUIT failed", "server", t.addr, "err", t.scrub(err.Error()))
	}
}

// sendError is an error whose text has been scrubbed of the password. It
// deliberately does not unwrap to the raw cause, whose text may not be.
type sendError struct {
	msg string
	ctx error // context.Canceled or DeadlineExceeded, when that was the cause
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.ctx }

// fail classifies err from stage: SMTP replies by code, anything else
// (refused connection, reset, timeout, TLS failure) as temporary.
func (t *Target) fail(ctx context.Context, stage string, err error) error {
	code, reply := 0, ""
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		code, reply = se.Code, t.reply(se)
	}
	se2 := &sendError{}
	switch {
	case code == 0 && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)):
		// Our deadline (or the caller's) closed the connection, or go-smtp's
		// per-command backstop fired first: either way, time ran out.
		se2.ctx = ctx.Err()
		if se2.ctx == nil {
			se2.ctx = context.DeadlineExceeded
		}
		se2.msg = fmt.Sprintf("smtp %s: %s: %v (timeout %v)", t.addr, stage, se2.ctx, t.timeout)
	case reply != "":
		se2.msg = fmt.Sprintf("smtp %s: %s: server replied %s", t.addr, stage, reply)
	default:
		se2.msg = fmt.Sprintf("smtp %s: %s: %s", t.addr, stage, t.scrub(err.Error()))
	}
	classified := target.ClassifySMTP(code, se2)
	var te *target.Error
	if errors.As(classified, &te) {
		te.Reply = reply // the server's own words (or nothing), never our request
	}
	return classified
}

// reply formats a server reply on one line, scrubbed.
func (t *Target) reply(se *gosmtp.SMTPError) string {
	s := strconv.Itoa(se.Code)
	if ec := se.EnhancedCode; ec != (gosmtp.EnhancedCode{}) && ec != gosmtp.NoEnhancedCode {
		s += fmt.Sprintf(" %d.%d.%d", ec[0], ec[1], ec[2])
	}
	if se.Message != "" {
		s += " " + strings.ReplaceAll(strings.TrimSpace(se.Message), "\n", " / ")
	}
	return t.scrub(s)
}

// scrub removes every form of the password from s.
func (t *Target) scrub(s string) string {
	for _, sec := range t.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<secret>")
		}
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	return !slices.ContainsFunc(ss, func(s string) bool { return !isASCII(s) })
}
