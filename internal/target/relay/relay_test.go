package relay

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailroute"
	"herald/internal/target"
	"herald/internal/target/smtp"
	"herald/internal/target/smtp/smtptest"
	"herald/internal/testkit"
)

func TestDeliver(t *testing.T) {
	raw := []byte("From: root\r\nTo: boss@example.com\r\nSubject: weekly report\r\n\r\nnumbers\r\n")
	local := mailroute.NewLocal("pve1", "pve1.example.com")
	tests := []struct {
		name     string
		mail     *event.Mail
		rcpt     func(string) error
		wantErr  string
		wantTemp bool
		wantFrom string
		wantTo   []string
	}{
		{name: "remote only", mail: &event.Mail{Raw: raw, From: "root", Recipients: []string{"boss@example.com"}},
			wantFrom: "root@pve1.example.com", wantTo: []string{"boss@example.com"}},
		{name: "mixed keeps the local ones out", mail: &event.Mail{Raw: raw, From: "alice@pve1.example.com", Recipients: []string{"root", "boss@example.com", "ops@pve1", "list@lists.example.org"}},
			wantFrom: "alice@pve1.example.com", wantTo: []string{"boss@example.com", "list@lists.example.org"}},
		{name: "null sender stays null", mail: &event.Mail{Raw: raw, Recipients: []string{"boss@example.com"}},
			wantFrom: "", wantTo: []string{"boss@example.com"}},
		{name: "temporary refusal retries", mail: &event.Mail{Raw: raw, From: "root", Recipients: []string{"boss@example.com"}},
			rcpt: smtptest.TempFailOnce("boss@example.com"), wantErr: "451", wantTemp: true},
		{name: "permanent refusal", mail: &event.Mail{Raw: raw, From: "root", Recipients: []string{"boss@example.com"}},
			rcpt: smtptest.Reject(550, "boss@example.com"), wantErr: "550"},
		{name: "no remote recipient", mail: &event.Mail{Raw: raw, From: "root", Recipients: []string{"root"}}, wantErr: "no remote recipients"},
		{name: "no mail", wantErr: "no mail to relay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srv *smtptest.Server
			var sender Sender = refuse{t}
			if tt.mail != nil && len(local.Remote(tt.mail.Recipients)) > 0 {
				srv = smtptest.Start(t, smtptest.Config{Rcpt: tt.rcpt})
				st, err := smtp.New(smtp.Options{Server: srv.Host, Port: srv.Port, Mode: smtp.ModeInsecure, From: "root", Hostname: "pve1.example.com"})
				if err != nil {
					t.Fatal(err)
				}
				sender = st
			}
			tg := New(sender, local.IsLocal, "pve1.example.com")
			err := tg.Deliver(context.Background(), &event.Event{ID: "e1", Mail: tt.mail, Fields: map[string]string{"type": "system-mail"}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if target.IsTemporary(err) != tt.wantTemp {
					t.Errorf("temporary = %v, want %v", target.IsTemporary(err), tt.wantTemp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages relayed", len(msgs))
			}
			m := msgs[0]
			if m.From != tt.wantFrom || !slices.Equal(m.To, tt.wantTo) {
				t.Errorf("envelope from %q to %q, want %q %q", m.From, m.To, tt.wantFrom, tt.wantTo)
			}
			if !bytes.Equal(bytes.ReplaceAll(m.Data, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))) {
				t.Errorf("message changed on the way:\n%q\nwant\n%q", m.Data, raw)
			}
		})
	}
}

// refuse is a Sender that must not be called.
type refuse struct{ t *testing.T }

func (r refuse) Send(context.Context, string, []string, []byte) error {
	r.t.Error("Send called for a mail that has nothing to relay")
	return nil
}
func (refuse) String() string { return "refuse" }

// The relay refuses the smarthost password (relay-password-file): the
// password shows nowhere, however the outcome or the target is printed.
func TestRelayPasswordNeverLeaks(t *testing.T) {
	const password = "relay-file-S3cret"
	srv := smtptest.Start(t, smtptest.Config{Mode: smtptest.STARTTLS, Users: map[string]string{"relayuser": "other"}})
	st, err := smtp.New(smtp.Options{Server: srv.Host, Port: srv.Port, Mode: smtp.ModeSTARTTLS, Username: "relayuser",
		Password: config.NewSecret(password), From: "root", Hostname: "pve1.example.com", TLSConfig: srv.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	local := mailroute.NewLocal("pve1", "pve1.example.com")
	tg := New(st, local.IsLocal, "pve1.example.com")
	raw := []byte("From: root\r\nTo: boss@example.com\r\nSubject: weekly report\r\n\r\nnumbers\r\n")
	err = tg.Deliver(context.Background(), &event.Event{ID: "e1", Fields: map[string]string{"type": "system-mail"},
		Mail: &event.Mail{Raw: raw, From: "root", Recipients: []string{"boss@example.com"}}})
	if err == nil || target.IsTemporary(err) {
		t.Fatalf("err = %v, want the permanent AUTH refusal", err)
	}
	testkit.NoSecretIn(t, []string{password}, map[string]any{"error": err, "reply": target.Reply(err),
		"target": tg, "smtp target": st})
}
