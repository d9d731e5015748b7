package app

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/router"
)

func TestResolvePrecedence(t *testing.T) {
	t.Setenv("HERALD_CONFIG_DIR", "")
	t.Setenv("HERALD_STATE_DIR", "")
	p := Resolve("/flag/etc", "/flag/state")
	if p.ConfigDir != "/flag/etc" || p.StateDir != "/flag/state" || p.Embedded {
		t.Fatalf("flags: %+v", p)
	}
	t.Setenv("HERALD_CONFIG_DIR", "/env/etc")
	t.Setenv("HERALD_STATE_DIR", "/env/state")
	if p := Resolve("", ""); p.ConfigDir != "/env/etc" || p.StateDir != "/env/state" || p.Embedded {
		t.Fatalf("environment: %+v", p)
	}
	if p := Resolve("/flag/etc", ""); p.ConfigDir != "/flag/etc" || p.StateDir != "/env/state" {
		t.Fatalf("flag over environment: %+v", p)
	}
	t.Setenv("HERALD_CONFIG_DIR", "")
	t.Setenv("HERALD_STATE_DIR", "")
	p = Resolve("", "")
	_, err := os.Stat(DefaultConfigDir)
	if installed := err == nil; installed == p.Embedded {
		t.Fatalf("embedded=%v although %s exists=%v", p.Embedded, DefaultConfigDir, installed)
	}
	if p.Embedded {
		wd, _ := os.Getwd()
		if p.StateDir != filepath.Join(wd, "var") {
			t.Fatalf("embedded state dir %q, want ./var", p.StateDir)
		}
	}
}

// The embedded default routes every event to STATE/events.jsonl and every
// mail to the mbox STATE/mail/root (docs/interfaces.md §4), on ports 2525 and 8025.
func TestEmbeddedSettings(t *testing.T) {
	state := t.TempDir()
	s, err := LoadSettings(Paths{ConfigDir: filepath.Join(t.TempDir(), "none"), StateDir: state, Embedded: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"events": "events.jsonl", "mail-root": "mail/root"} {
		sec := s.Notify.Target(name)
		if sec == nil {
			t.Fatalf("no target %s", name)
		}
		if got, _ := sec.Get("path"); got != filepath.Join(state, path) {
			t.Errorf("%s path %q", name, got)
		}
	}
	ev := &event.Event{ID: "e", Timestamp: time.Now(), Severity: event.Unknown, Fields: map[string]string{"type": "system-mail"}}
	res := (&router.Router{Config: s.Notify}).Route(ev, ev.Timestamp)
	if !slices.Equal(res.Targets, []string{"events", "mail-root"}) {
		t.Fatalf("targets %v", res.Targets)
	}
	if got := addrStrings(s.Daemon.SMTPListen); !slices.Equal(got, []string{"127.0.0.1:2525", "[::1]:2525"}) {
		t.Errorf("smtp listen %v", got)
	}
	if got := addrStrings(s.Daemon.HTTPListen); !slices.Equal(got, []string{"127.0.0.1:8025"}) {
		t.Errorf("http listen %v", got)
	}
	if _, err := CheckTargets(s); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialsFillUnsetSecrets(t *testing.T) {
	cfg := t.TempDir()
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "herald.cfg"), []byte("relay smtp.example.org:587\nrelay-username herald\nrelay-password-file "+filepath.Join(cfg, "pw")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{CredentialNotificationsPriv, CredentialRelayPassword} {
		if err := os.WriteFile(filepath.Join(creds, n), nil, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	s, err := LoadSettings(Paths{ConfigDir: cfg, StateDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// herald.cfg names a password file: the credential does not override it.
	if s.Daemon.RelayPasswordFile != filepath.Join(cfg, "pw") {
		t.Errorf("relay password file %q", s.Daemon.RelayPasswordFile)
	}
	if s.Daemon.NotificationsPrivFile != filepath.Join(creds, CredentialNotificationsPriv) {
		t.Errorf("private file %q", s.Daemon.NotificationsPrivFile)
	}
}

func TestRelayPasswordFileMustBePrivate(t *testing.T) {
	cfg := t.TempDir()
	pw := filepath.Join(cfg, "pw")
	if err := os.WriteFile(pw, []byte("RELAY-SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cfg, "herald.cfg"), []byte("relay smtp.example.org:587\nrelay-username herald\nrelay-password-file "+pw+"\n"), 0o644)
	s, err := LoadSettings(Paths{ConfigDir: cfg, StateDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckTargets(s) // every sendmail target needs the relay: a herald.cfg error
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "RELAY-SECRET") {
		t.Fatalf("err = %v", err)
	}
	if err := os.Chmod(pw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckTargets(s); err != nil {
		t.Fatal(err)
	}
}

func TestSessionCap(t *testing.T) {
	for _, tc := range []struct {
		configured int
		nofile     uint64
		reserve    int
		want       int
	}{
		{100, 1 << 20, 64, 100},
		{100, 1024, 64, 100},
		{1000, 1024, 64, 480},
		{100, 100, 64, 18},
		{100, 50, 64, 1},
		{100, 0, 64, 100}, // limit unknown
	} {
		if got := sessionCap(tc.configured, tc.nofile, tc.reserve); got != tc.want {
			t.Errorf("sessionCap(%d, %d, %d) = %d, want %d", tc.configured, tc.nofile, tc.reserve, got, tc.want)
		}
	}
}
