package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/event"
	"herald/internal/target/build"
	"herald/internal/target/relay"
	"herald/internal/target/smtp/smtptest"
)

// The relay's certificate is checked against relay-ca-file; without it the
// system's roots do not know the test CA; relay-verify no skips the check.
func TestRelayCAFileAndVerify(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Config{Mode: smtptest.TLS})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CA.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := []byte("Subject: over TLS\r\n\r\nbody\r\n")
	tests := []struct {
		name    string
		cfg     string
		wantErr string
	}{
		{"ca file", "relay-ca-file " + ca + "\n", ""},
		{"system roots", "", "certificate"},
		{"no verification", "relay-verify no\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "herald.cfg"), []byte(fmt.Sprintf(
				"relay 127.0.0.1:%d\nrelay-mode tls\nmail-name pve1.example.org\n%s", srv.Port, tt.cfg)), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := LoadSettings(Paths{ConfigDir: dir, StateDir: t.TempDir()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			targets, _, err := buildTargets(s, slog.New(slog.DiscardHandler), build.Env{})
			if err != nil {
				t.Fatal(err)
			}
			rt, ok := targets[relay.Name]
			if !ok {
				t.Fatalf("no %s target with a relay set", relay.Name)
			}
			before := len(srv.Messages())
			err = rt.Deliver(context.Background(), &event.Event{ID: "e1", Fields: map[string]string{"type": "system-mail"},
				Mail: &event.Mail{Raw: raw, From: "root", Recipients: []string{"boss@example.com"}}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			msgs := srv.Messages()
			if len(msgs) != before+1 || !msgs[len(msgs)-1].TLS || msgs[len(msgs)-1].Helo != "pve1.example.org" || msgs[len(msgs)-1].From != "root@pve1.example.org" {
				t.Errorf("relayed: %+v", msgs[len(msgs)-1])
			}
		})
	}
	// A relay that is herald's own listener is refused as a configuration
	// error.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "herald.cfg"), []byte("smtp-listen 127.0.0.1:2626\nrelay 127.0.0.1:2626\nrelay-mode insecure\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(Paths{ConfigDir: dir, StateDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckTargets(s); err == nil || !strings.Contains(err.Error(), "would loop") {
		t.Errorf("relay = own listener: %v", err)
	}
}
