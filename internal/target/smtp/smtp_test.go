package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/smtp/smtptest"
	"herald/internal/testkit"
)

const secret = "s3cr3t-Pa55w0rd"

func testEvent() *event.Event {
	return &event.Event{
		ID:        "7a4f0f8e-54a3-4b9e-9a51-3b8f0d1c2e3f",
		Timestamp: time.Date(2025, 5, 23, 11, 59, 32, 0, time.UTC),
		Severity:  event.Error,
		Title:     "vzdump backup status (pve1): backup failed",
		Body:      "VM 100 failed\n",
		Fields:    map[string]string{"type": "vzdump", "hostname": "pve1"},
	}
}

// newTarget builds a target for srv; mod adjusts the options.
func newTarget(t *testing.T, srv *smtptest.Server, mode string, mod func(*Options)) *Target {
	t.Helper()
	opt := Options{
		Server: srv.Host, Port: srv.Port, Mode: mode,
		From: "pve1@example.org", Author: "Proxmox VE", To: []string{"ops@example.org", "root"},
		Hostname: "pve1.example.org", TLSConfig: srv.ClientTLS(), Timeout: 10 * time.Second,
	}
	if mod != nil {
		mod(&opt)
	}
	tg, err := New(opt)
	if err != nil {
		t.Fatalf("New(%v): %v", opt, err)
	}
	return tg
}

func deliver(t *testing.T, tg *Target, ev *event.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return tg.Deliver(ctx, ev)
}

func readMail(t *testing.T, data []byte) *mail.Message {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, data)
	}
	return m
}

func TestModes(t *testing.T) {
	tests := []struct {
		name    string
		srvMode string
		mode    string
		users   map[string]string
		mechs   []string
		user    string
		wantTLS bool
	}{
		{name: "insecure", srvMode: smtptest.Insecure, mode: ModeInsecure},
		{name: "starttls", srvMode: smtptest.STARTTLS, mode: ModeSTARTTLS, wantTLS: true},
		{name: "tls", srvMode: smtptest.TLS, mode: ModeTLS, wantTLS: true},
		{name: "starttls-auth-plain", srvMode: smtptest.STARTTLS, mode: ModeSTARTTLS, wantTLS: true,
			users: map[string]string{"alice": secret}, mechs: []string{sasl.Plain, sasl.Login}, user: "alice"},
		{name: "tls-auth-login", srvMode: smtptest.TLS, mode: ModeTLS, wantTLS: true,
			users: map[string]string{"alice": secret}, mechs: []string{sasl.Login}, user: "alice"},
		{name: "insecure-auth-loopback", srvMode: smtptest.Insecure, mode: ModeInsecure,
			users: map[string]string{"alice": secret}, mechs: []string{sasl.Plain}, user: "alice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Config{Mode: tc.srvMode, Users: tc.users, Mechs: tc.mechs,
				AllowInsecureAuth: tc.srvMode == smtptest.Insecure})
			tg := newTarget(t, srv, tc.mode, func(o *Options) {
				if tc.user != "" {
					o.Username, o.Password = tc.user, config.NewSecret(secret)
				}
			})
			if err := deliver(t, tg, testEvent()); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.Helo != "pve1.example.org" || m.TLS != tc.wantTLS || m.AuthUser != tc.user {
				t.Errorf("session: helo %q tls %v auth %q; want pve1.example.org, %v, %q", m.Helo, m.TLS, m.AuthUser, tc.wantTLS, tc.user)
			}
			if m.From != "pve1@example.org" || strings.Join(m.To, ",") != "ops@example.org,root@pve1.example.org" {
				t.Errorf("envelope %s -> %v", m.From, m.To)
			}
			msg := readMail(t, m.Data)
			if got := msg.Header.Get("From"); got != "Proxmox VE <pve1@example.org>" {
				t.Errorf("From = %q", got)
			}
			if got := msg.Header.Get("To"); got != "ops@example.org, root@pve1.example.org" {
				t.Errorf("To = %q", got)
			}
			if got := msg.Header.Get("Subject"); got != "vzdump backup status (pve1): backup failed" {
				t.Errorf("Subject = %q", got)
			}
			if !strings.HasPrefix(msg.Header.Get("Content-Type"), "multipart/alternative;") {
				t.Errorf("Content-Type = %q", msg.Header.Get("Content-Type"))
			}
		})
	}
}

func TestUTF8Address(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Config{SMTPUTF8: true})
	tg := newTarget(t, srv, ModeInsecure, func(o *Options) { o.To = []string{"jürgen@example.org"} })
	if err := deliver(t, tg, testEvent()); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].To[0] != "jürgen@example.org" {
		t.Fatalf("got %+v", msgs)
	}
}

func TestSystemMailIsReheaded(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Config{})
	tg := newTarget(t, srv, ModeInsecure, nil)
	raw := "From root@pve1  Fri May 23 11:59:32 2025\n" +
		"Delivered-To: root@pve1\nSubject: cron\nContent-Type: text/plain; charset=utf-8\nMIME-Version: 1.0\n\nhello from cron\n"
	ev := testEvent()
	ev.Title = "cron"
	ev.Fields = map[string]string{"type": "system-mail", "hostname": "pve1"}
	ev.Mail = &event.Mail{Raw: []byte(raw), From: "root@pve1", Recipients: []string{"root"}}
	if err := deliver(t, tg, ev); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	msg := readMail(t, msgs[0].Data)
	if msg.Header.Get("Delivered-To") != "" || msg.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		msg.Header.Get("From") != "Proxmox VE <pve1@example.org>" {
		t.Errorf("headers not re-made: %v", msg.Header)
	}
	if body, _ := io.ReadAll(msg.Body); string(body) != "hello from cron\r\n" {
		t.Errorf("body = %q", body)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name      string
		cfg       smtptest.Config
		mode      string
		mod       func(*Options)
		wantTemp  bool
		wantMsgs  int
		wantInErr string
		wantReply string
	}{
		{name: "rcpt-5xx-all", cfg: smtptest.Config{Rcpt: smtptest.Reject(550, "ops@example.org", "root@pve1.example.org")},
			mode: ModeInsecure, wantInErr: "every recipient refused: ops@example.org: 550 5.1.1 rejected ops@example.org; root@pve1.example.org: 550",
			wantReply: "550 5.1.1 rejected ops@example.org"},
		{name: "rcpt-5xx-single", cfg: smtptest.Config{Rcpt: smtptest.Reject(550, "ops@example.org")},
			mod: func(o *Options) { o.To = []string{"ops@example.org"} }, mode: ModeInsecure,
			wantInErr: "RCPT TO:<ops@example.org>: server replied 550", wantReply: "550 5.1.1 rejected ops@example.org"},
		{name: "rcpt-5xx-one", cfg: smtptest.Config{Rcpt: smtptest.Reject(550, "root@pve1.example.org")},
			mode: ModeInsecure, wantMsgs: 1, wantInErr: "sent to ops@example.org, but refused for root@pve1.example.org: 550",
			wantReply: "550 5.1.1 rejected root@pve1.example.org"},
		{name: "mail-4xx", cfg: smtptest.Config{Mail: smtptest.Reject(421, "pve1@example.org")},
			mode: ModeInsecure, wantTemp: true, wantInErr: "MAIL FROM", wantReply: "421 4.1.1 rejected pve1@example.org"},
		{name: "data-5xx", cfg: smtptest.Config{Data: func([]byte) error { return smtptest.Reject(554, "x")("x") }},
			mode: ModeInsecure, wantInErr: "end of DATA", wantReply: "554 5.1.1 rejected x"},
		{name: "data-4xx", cfg: smtptest.Config{Data: func([]byte) error { return smtptest.Reject(452, "x")("x") }},
			mode: ModeInsecure, wantTemp: true, wantInErr: "end of DATA", wantReply: "452 4.1.1 rejected x"},
		{name: "no-starttls", cfg: smtptest.Config{Mode: smtptest.Insecure}, mode: ModeSTARTTLS,
			wantInErr: "does not offer STARTTLS"},
		{name: "untrusted-cert", cfg: smtptest.Config{Mode: smtptest.TLS}, mode: ModeTLS,
			mod: func(o *Options) { o.TLSConfig = nil }, wantTemp: true, wantInErr: "TLS handshake"},
		{name: "wrong-name", cfg: smtptest.Config{Mode: smtptest.STARTTLS}, mode: ModeSTARTTLS,
			mod: func(o *Options) { o.TLSConfig.ServerName = "relay.example.org" }, wantTemp: true, wantInErr: "TLS handshake"},
		{name: "utf8-address-unsupported", cfg: smtptest.Config{}, mode: ModeInsecure,
			mod: func(o *Options) { o.To = []string{"jürgen@example.org"} }, wantInErr: "does not offer SMTPUTF8"},
		{name: "auth-not-offered", cfg: smtptest.Config{Mode: smtptest.TLS}, mode: ModeTLS,
			mod: func(o *Options) { o.Username, o.Password = "alice", config.NewSecret(secret) }, wantInErr: "does not offer AUTH"},
		{name: "auth-unknown-mechs", cfg: smtptest.Config{Mode: smtptest.TLS, Users: map[string]string{"alice": secret}, Mechs: []string{"CRAM-MD5"}},
			mode: ModeTLS, mod: func(o *Options) { o.Username, o.Password = "alice", config.NewSecret(secret) }, wantInErr: "none of which herald speaks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, tc.cfg)
			tg := newTarget(t, srv, tc.mode, tc.mod)
			err := deliver(t, tg, testEvent())
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			var te *target.Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not a *target.Error", err)
			}
			if target.IsTemporary(err) != tc.wantTemp {
				t.Errorf("temporary = %v, want %v: %v", target.IsTemporary(err), tc.wantTemp, err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q lacks %q", err, tc.wantInErr)
			}
			if target.Reply(err) != tc.wantReply {
				t.Errorf("Reply = %q, want %q", target.Reply(err), tc.wantReply)
			}
			if n := len(srv.Messages()); n != tc.wantMsgs {
				t.Errorf("server got %d messages, want %d", n, tc.wantMsgs)
			}
		})
	}
}

// A 4xx for one recipient sends nothing (so that the retry reaches every
// recipient exactly once); the retry then succeeds.
func TestTempFailThenRetry(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Config{Rcpt: smtptest.TempFailOnce("root@pve1.example.org")})
	tg := newTarget(t, srv, ModeInsecure, nil)
	err := deliver(t, tg, testEvent())
	if !target.IsTemporary(err) || target.Reply(err) != "451 4.3.0 try again later" {
		t.Fatalf("first attempt: %v (reply %q), want temporary 451", err, target.Reply(err))
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("first attempt delivered %d messages despite a 4xx", n)
	}
	if err := deliver(t, tg, testEvent()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 2 {
		t.Fatalf("after retry: %+v", msgs)
	}
}

func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tg, err := New(Options{Server: "127.0.0.1", Port: port, Mode: ModeInsecure, From: "a@example.org", To: []string{"b@example.org"}, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	err = deliver(t, tg, testEvent())
	if err == nil || !target.IsTemporary(err) || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("got %v, want a temporary connect error", err)
	}
}

// A server that accepts the connection but never greets must not hold the
// delivery beyond its deadline.
func TestSilentServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for _, mode := range []string{ModeInsecure, ModeSTARTTLS, ModeTLS} {
		t.Run(mode, func(t *testing.T) {
			tg, err := New(Options{Server: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, Mode: mode,
				From: "a@example.org", To: []string{"b@example.org"}, Hostname: "h", Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = tg.Deliver(context.Background(), testEvent())
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Deliver took %v with a 300ms timeout", took)
			}
			if !target.IsTemporary(err) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want a temporary deadline error", err)
			}
		})
	}
}

// The password must appear nowhere: not in the error, not in the Reply, not
// in the log, whatever the server answers.
func TestWrongPasswordLeaksNothing(t *testing.T) {
	for _, mech := range []string{sasl.Plain, sasl.Login} {
		t.Run(mech, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Config{Mode: smtptest.STARTTLS, Users: map[string]string{"alice": "right"},
				Mechs: []string{mech}})
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			opt := Options{}
			tg := newTarget(t, srv, ModeSTARTTLS, func(o *Options) {
				o.Username, o.Password, o.Log = "alice", config.NewSecret(secret), log
				opt = *o
			})
			err := deliver(t, tg, testEvent())
			if err == nil || target.IsTemporary(err) {
				t.Fatalf("got %v, want a permanent AUTH failure", err)
			}
			if srv.AuthFailures() != 1 {
				t.Errorf("server saw %d failed AUTH attempts, want 1", srv.AuthFailures())
			}
			log.Info("options", "opt", opt)
			testkit.NoSecretIn(t, []string{secret}, map[string]any{"error": err, "reply": target.Reply(err),
				"log": logs.String(), "options": opt, "target": tg})
			if !strings.Contains(err.Error(), "AUTH") || !strings.Contains(target.Reply(err), "535") {
				t.Errorf("error %q / reply %q does not say AUTH failed", err, target.Reply(err))
			}
		})
	}
}

// A server that echoes the credentials back in its reply gets scrubbed.
func TestScrub(t *testing.T) {
	tg, err := New(Options{Server: "relay.example.org", Username: "alice", Password: config.NewSecret(secret), To: []string{"a@b"}, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tg.secretForms()); n != 4 {
		t.Fatalf("%d forms of the password to scrub, want 4", n)
	}
	for _, echo := range tg.secretForms() {
		got := tg.scrub("535 5.7.8 bad credentials " + echo + " end")
		if strings.Contains(got, secret) || strings.Contains(got, echo) || !strings.Contains(got, "<secret>") {
			t.Errorf("scrub left %q", got)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		opt     Options
		wantErr string
		check   func(*testing.T, *Target)
	}{
		{name: "defaults", opt: Options{Server: "relay.example.org", To: []string{"a@example.org", "a@example.org"}, Hostname: "h.example.org"},
			check: func(t *testing.T, tg *Target) {
				if tg.addr != "relay.example.org:465" || tg.mode != ModeTLS || tg.from != "root@h.example.org" ||
					tg.author != "herald" || tg.timeout != DefaultTimeout || tg.tlsConfig.ServerName != "relay.example.org" ||
					len(tg.to) != 1 {
					t.Errorf("defaults: %+v", tg)
				}
			}},
		{name: "starttls-port", opt: Options{Server: "relay", Mode: ModeSTARTTLS, Hostname: "h"},
			check: func(t *testing.T, tg *Target) {
				if tg.addr != "relay:587" {
					t.Errorf("addr %s", tg.addr)
				}
			}},
		{name: "insecure-port", opt: Options{Server: "::1", Mode: ModeInsecure, Hostname: "h"},
			check: func(t *testing.T, tg *Target) {
				if tg.addr != "[::1]:25" {
					t.Errorf("addr %s", tg.addr)
				}
			}},
		{name: "explicit-port", opt: Options{Server: "relay", Port: 2525, Hostname: "h"},
			check: func(t *testing.T, tg *Target) {
				if tg.addr != "relay:2525" {
					t.Errorf("addr %s", tg.addr)
				}
			}},
		{name: "no-server", opt: Options{}, wantErr: "server is not set"},
		{name: "bad-mode", opt: Options{Server: "r", Mode: "ssl"}, wantErr: "not one of"},
		{name: "bad-port", opt: Options{Server: "r", Port: 70000}, wantErr: "out of range"},
		{name: "user-no-password", opt: Options{Server: "r", Username: "alice"}, wantErr: "username is set but no password was provided"},
		{name: "password-no-user", opt: Options{Server: "r", Password: config.NewSecret(secret)}, wantErr: "no username"},
		{name: "auth-insecure-remote", opt: Options{Server: "relay.example.org", Mode: ModeInsecure, Username: "a", Password: config.NewSecret(secret)},
			wantErr: "refusing to send the password"},
		{name: "auth-insecure-localhost", opt: Options{Server: "localhost", Mode: ModeInsecure, Username: "a", Password: config.NewSecret(secret), Hostname: "h"}},
		{name: "bad-recipient", opt: Options{Server: "r", To: []string{"a@b\r\nRCPT TO:<evil@x>"}, Hostname: "h"}, wantErr: "recipient"},
		{name: "bad-from", opt: Options{Server: "r", From: "a b@c", Hostname: "h"}, wantErr: "from-address"},
		{name: "bad-hostname", opt: Options{Server: "r", Hostname: "h\r\nMAIL"}, wantErr: "EHLO name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := New(tc.opt)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error contains the password")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, tg)
			}
		})
	}
}

func TestNoRecipients(t *testing.T) {
	tg, err := New(Options{Server: "127.0.0.1", Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, tg, testEvent()); err == nil || target.IsTemporary(err) {
		t.Fatalf("got %v, want a permanent error", err)
	}
}

func TestLoginClient(t *testing.T) {
	tests := []struct {
		challenges []string
		want       []string
	}{
		{[]string{"Username:", "Password:"}, []string{"u", "p"}},
		{[]string{"username:", "password:"}, []string{"u", "p"}},
		{[]string{"Password:"}, []string{"p"}}, // after an initial response
		{[]string{"", ""}, []string{"u", "p"}}, // unlabelled: by order
	}
	for _, tc := range tests {
		c := &loginClient{user: "u", pass: "p"}
		if mech, ir, err := c.Start(); mech != "LOGIN" || ir != nil || err != nil {
			t.Fatalf("Start = %q %q %v", mech, ir, err)
		}
		for i, ch := range tc.challenges {
			got, err := c.Next([]byte(ch))
			if err != nil || string(got) != tc.want[i] {
				t.Errorf("%v: Next(%q) = %q, %v; want %q", tc.challenges, ch, got, err, tc.want[i])
			}
		}
	}
	c := &loginClient{user: "u", pass: "p"}
	for range 2 {
		_, _ = c.Next([]byte("?"))
	}
	if _, err := c.Next([]byte("?")); err == nil {
		t.Errorf("a third unlabelled challenge was answered")
	}
}

// tlsConfigCloned: New must not share the caller's tls.Config.
func TestTLSConfigCloned(t *testing.T) {
	cfg := &tls.Config{}
	tg, err := New(Options{Server: "relay.example.org", Hostname: "h", TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "" || tg.tlsConfig == cfg || tg.tlsConfig.ServerName != "relay.example.org" {
		t.Errorf("caller's tls.Config modified or shared")
	}
}
