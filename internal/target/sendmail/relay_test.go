package sendmail

// Tests of mail for remote recipients: through the relay, or an error without one.

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"

	"herald/internal/config"
	"herald/internal/target"
	"herald/internal/target/smtp/smtptest"
	"herald/internal/testkit"
)

func TestRemoteWithoutRelay(t *testing.T) {
	mb := newMailboxes(t)
	tg := newTarget(t, mb, func(o *Options) { o.To = []string{"ops@example.org", "root"} })
	err := deliver(t, tg, testEvent())
	if err == nil || target.IsTemporary(err) {
		t.Fatalf("got %v, want a permanent error", err)
	}
	for _, want := range []string{"no relay configured for remote recipient ops@example.org", "(delivered to root)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := len(mb.messages(t, "root")); n != 1 {
		t.Errorf("root got %d messages, want 1 despite the remote failure", n)
	}
}

func TestRelay(t *testing.T) {
	mb := newMailboxes(t)
	srv := smtptest.Start(t, smtptest.Config{Mode: smtptest.STARTTLS, Users: map[string]string{"relayuser": "relaypass"}})
	tg := newTarget(t, mb, func(o *Options) {
		o.To = []string{"root", "ops@example.org", "dev@example.org"}
		o.From = "pve1@example.org"
		o.Relay = &Relay{Host: srv.Host, Port: srv.Port, Mode: "starttls", Username: "relayuser", Password: config.NewSecret("relaypass"), TLSConfig: srv.ClientTLS()}
	})
	if err := deliver(t, tg, testEvent()); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("relay got %d messages", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.AuthUser != "relayuser" || m.Helo != hostname || m.From != "pve1@example.org" ||
		strings.Join(m.To, ",") != "ops@example.org,dev@example.org" {
		t.Errorf("relay session %+v", m)
	}
	pm, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	// Everyone sees the whole recipient list, as with Proxmox's sendmail.
	if got := pm.Header.Get("To"); got != "root@pve1.example.org, ops@example.org, dev@example.org" {
		t.Errorf("To = %q", got)
	}
	if n := len(mb.messages(t, "root")); n != 1 {
		t.Errorf("root got %d messages", n)
	}
}

// A relay that refuses the password: the password shows nowhere, however
// the outcome, the target or its relay settings are printed.
func TestRelayPasswordNeverLeaks(t *testing.T) {
	mb := newMailboxes(t)
	srv := smtptest.Start(t, smtptest.Config{Mode: smtptest.STARTTLS, Users: map[string]string{"relayuser": "other"}})
	const password = "relay-S3cret-pass"
	r := &Relay{Host: srv.Host, Port: srv.Port, Mode: "starttls", Username: "relayuser", Password: config.NewSecret(password), TLSConfig: srv.ClientTLS()}
	tg := newTarget(t, mb, func(o *Options) {
		o.To = []string{"ops@example.org"}
		o.Relay = r
	})
	err := deliver(t, tg, testEvent())
	if err == nil {
		t.Fatal("delivery through a relay that refuses the password succeeded")
	}
	testkit.NoSecretIn(t, []string{password}, map[string]any{"error": err, "reply": target.Reply(err),
		"target": tg, "relay": r, "relay settings": *r})
}
