package smtp

// This file holds one SMTP transaction: connect, EHLO, STARTTLS or
// implicit TLS, AUTH, MAIL/RCPT/DATA.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"herald/internal/target"
)

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
