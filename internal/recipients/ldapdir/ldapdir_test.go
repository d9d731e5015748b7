package ldapdir

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/recipients"
	"herald/internal/recipients/ldapdir/ldaptest"
	"herald/internal/testkit"
)

func stoneyConfig(url string) config.LDAP {
	return config.LDAP{
		Name: "stoney", Servers: []string{url},
		BindDN: ldaptest.BindDN, BindPassword: config.NewSecret(ldaptest.BindPassword),
		BaseDNs: []string{ldaptest.AccountBase}, PersonBaseDNs: []string{ldaptest.PersonBase},
		AccountFilter: config.DefaultLDAPFilter, PersonFilter: config.DefaultLDAPFilter,
		WarningAttr: config.DefaultLDAPWarningAttr, MediumAttr: config.DefaultLDAPMediumAttr,
		OwnerAttr: config.DefaultLDAPOwnerAttr, MailAttr: config.DefaultLDAPMailAttr,
		Timeout: 3 * time.Second, CacheTime: time.Minute, StaleTime: time.Hour,
	}
}

func newDir(t *testing.T, cfg config.LDAP) (*Directory, *testkit.Buffer) {
	t.Helper()
	logs := &testkit.Buffer{}
	d, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return d, logs
}

// TestLDAPStoneyRules runs each of stoney backup's rules against a real
// slapd.
func TestLDAPStoneyRules(t *testing.T) {
	srv := ldaptest.Start(t)
	d, logs := newDir(t, stoneyConfig(srv.URL))
	tests := []struct {
		name, account string
		want          recipients.Warning
		errPart       string // a permanent error containing this
	}{
		{"flag off", "4000001", recipients.Warning{Found: true, Off: true}, ""},
		{"own mail, medium mail", "4000002", recipients.Warning{Found: true, Addresses: []string{"backup-4000002@example.com"}}, ""},
		{"medium not mail: owner's mail", "4000003", recipients.Warning{Found: true, Addresses: []string{"alice@example.com", "alice.private@example.org"}}, ""},
		{"no own mail: owner's mail", "4000004", recipients.Warning{Found: true, Addresses: []string{"bob@example.com"}}, ""},
		{"multivalued mail", "4000005", recipients.Warning{Found: true, Addresses: []string{"ops1@example.com", "ops2@example.com", "ops3@example.com"}}, ""},
		{"missing person", "4000006", recipients.Warning{}, `belongs to person "p-gone", who is not in the directory`},
		{"person without mail", "4000007", recipients.Warning{}, `person "p-nomail"`},
		{"no mail, no owner", "4000008", recipients.Warning{}, "no sstBelongsToPersonUID"},
		{"unknown account", "4999999", recipients.Warning{}, ""},
		{"injection: wildcard", "*", recipients.Warning{}, ""},
		{"injection: closing the filter", "4000002)(uid=*", recipients.Warning{}, ""},
		{"injection: or", "*)(|(uid=*)", recipients.Warning{}, ""},
		{"injection: NUL", "4000002\x00", recipients.Warning{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := d.Warn(context.Background(), tc.account)
			if tc.errPart != "" {
				var le *recipients.LookupError
				if !errors.As(err, &le) || le.Temp || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("Warn(%q) = %+v, %v; want a permanent error with %q", tc.account, w, err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("Warn(%q): %v", tc.account, err)
			}
			if w.Found != tc.want.Found || w.Off != tc.want.Off || !slices.Equal(w.Addresses, tc.want.Addresses) {
				t.Fatalf("Warn(%q) = %+v, want %+v", tc.account, w, tc.want)
			}
		})
	}
	testkit.NoSecretIn(t, []string{ldaptest.BindPassword}, map[string]any{"log": logs.String()})
}

func TestLDAPFilterEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"4000002":        "(uid=4000002)",
		"*":              `(uid=\2a)`,
		"a)(uid=*":       `(uid=a\29\28uid=\2a)`,
		`back\slash`:     `(uid=back\5cslash)`,
		"nul\x00":        `(uid=nul\00)`,
		"ü":              `(uid=\c3\bc)`,
		"*)(|(uid=*)(x=": `(uid=\2a\29\28|\28uid=\2a\29\28x=)`,
	} {
		if got := Filter("(uid={id})", in); got != want {
			t.Errorf("Filter(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestLDAPServerStoppedMidTest: a stopped directory is a temporary failure
// (never "nobody"), a cached answer serves with a warning while it is down,
// and look-ups work again once it returns.
func TestLDAPServerStoppedMidTest(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := stoneyConfig(srv.URL)
	cfg.CacheTime = time.Second
	d, logs := newDir(t, cfg)
	now := time.Now()
	d.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := d.Warn(ctx, "4000002"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	now = now.Add(2 * time.Second) // the cached answer is stale now
	w, err := d.Warn(ctx, "4000002")
	if err != nil || !slices.Equal(w.Addresses, []string{"backup-4000002@example.com"}) {
		t.Fatalf("stale answer while down: %+v, %v", w, err)
	}
	if !strings.Contains(logs.String(), "using a cached answer") {
		t.Fatalf("no warning about the stale answer:\n%s", logs)
	}
	_, err = d.Warn(ctx, "4000005")
	var le *recipients.LookupError
	if !errors.As(err, &le) || !le.Temp {
		t.Fatalf("uncached account while down: %v, want a temporary error", err)
	}
	now = now.Add(2 * time.Hour) // beyond stale-time: no answer at all
	if _, err := d.Warn(ctx, "4000002"); !errors.As(err, &le) || !le.Temp {
		t.Fatalf("after stale-time while down: %v, want a temporary error", err)
	}
	srv.Start()
	w, err = d.Warn(ctx, "4000005")
	if err != nil || len(w.Addresses) != 3 {
		t.Fatalf("after the server returned: %+v, %v", w, err)
	}
	if !strings.Contains(logs.String(), "directory reachable again") {
		t.Fatalf("no log line about the directory's return:\n%s", logs)
	}
}

// TestLDAPFailover: an unreachable first server, then a working one.
func TestLDAPFailover(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := stoneyConfig("ldap://127.0.0.1:1")
	cfg.Servers = append(cfg.Servers, srv.URL)
	d, _ := newDir(t, cfg)
	w, err := d.Warn(context.Background(), "4000004")
	if err != nil || !slices.Equal(w.Addresses, []string{"bob@example.com"}) {
		t.Fatalf("failover: %+v, %v", w, err)
	}
}

// TestLDAPBindRefused: a wrong password is a temporary failure whose error
// and log name neither password.
func TestLDAPBindRefused(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := stoneyConfig(srv.URL)
	const wrong = "wrong-pw-9k2!also-secret"
	cfg.BindPassword = config.NewSecret(wrong)
	d, logs := newDir(t, cfg)
	_, err := d.Warn(context.Background(), "4000002")
	var le *recipients.LookupError
	if !errors.As(err, &le) || !le.Temp || !strings.Contains(err.Error(), "bind as cn=herald") {
		t.Fatalf("wrong password: %v, want a temporary bind error", err)
	}
	testkit.NoSecretIn(t, []string{wrong, ldaptest.BindPassword}, map[string]any{"error": err, "log": logs.String(),
		"config": cfg, "directory": d})
}

// TestLDAPStartTLS: StartTLS with the test CA works; without the CA the
// certificate is refused (temporary: a fixed CA file will do).
func TestLDAPStartTLS(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := stoneyConfig(srv.URL)
	cfg.StartTLS = true
	cfg.CAFile = srv.CAFile
	d, _ := newDir(t, cfg)
	w, err := d.Warn(context.Background(), "4000002")
	if err != nil || len(w.Addresses) != 1 {
		t.Fatalf("StartTLS with the test CA: %+v, %v", w, err)
	}
	cfg.CAFile = ""
	d, _ = newDir(t, cfg)
	if _, err := d.Warn(context.Background(), "4000002"); err == nil || !strings.Contains(err.Error(), "StartTLS") {
		t.Fatalf("StartTLS without the CA: %v, want a certificate error", err)
	}
}

// TestLDAPS: ldaps:// with the test CA.
func TestLDAPS(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := stoneyConfig(srv.TLSURL)
	cfg.CAFile = srv.CAFile
	d, _ := newDir(t, cfg)
	w, err := d.Warn(context.Background(), "4000005")
	if err != nil || len(w.Addresses) != 3 {
		t.Fatalf("ldaps with the test CA: %+v, %v", w, err)
	}
}

// TestLDAPThroughLookup: the directory behind recipients.Lookup, as mail
// targets use it: the users file after LDAP, aliases on the result.
func TestLDAPThroughLookup(t *testing.T) {
	srv := ldaptest.Start(t)
	d, _ := newDir(t, stoneyConfig(srv.URL))
	l := &recipients.Lookup{Accounts: []recipients.Accounts{d}, Hostname: "pve1"}
	spec := recipients.Spec{Mailto: []string{"ops@example.com"}, Field: "account"}
	ev := func(id string) *eventT { return newEvent(id) }
	res, err := l.Resolve(context.Background(), spec, ev("4000003"))
	if err != nil || !slices.Equal(res.To, []string{"ops@example.com", "alice@example.com", "alice.private@example.org"}) {
		t.Fatalf("4000003: %+v, %v", res, err)
	}
	res, err = l.Resolve(context.Background(), spec, ev("4000001"))
	if err != nil || !slices.Equal(res.To, []string{"ops@example.com"}) || !slices.Equal(res.Off, []string{"4000001"}) {
		t.Fatalf("flag off: %+v, %v", res, err)
	}
	_, err = l.Resolve(context.Background(), spec, ev("4000002)(uid=*"))
	var le *recipients.LookupError
	if !errors.As(err, &le) || le.Temp || !strings.Contains(err.Error(), "not found in ldap stoney or the users file") {
		t.Fatalf("injection: %v, want a permanent not-found error", err)
	}
	srv.Stop()
	if _, err = l.Resolve(context.Background(), spec, ev("4000004")); !errors.As(err, &le) || !le.Temp {
		t.Fatalf("directory down: %v, want a temporary error", err)
	}
}

type eventT = event.Event

func newEvent(account string) *event.Event {
	return &event.Event{ID: "ev-" + account, Fields: map[string]string{"account": account}}
}

// BenchmarkLDAPWarn measures one look-up against a real slapd: uncached
// (connect, bind, account and person searches) and cached.
func BenchmarkLDAPWarn(b *testing.B) {
	srv := ldaptest.Start(b)
	for _, bc := range []struct {
		name  string
		cache time.Duration
	}{{"uncached", time.Nanosecond}, {"cached", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := stoneyConfig(srv.URL)
			cfg.CacheTime, cfg.StaleTime = bc.cache, time.Hour
			d, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := d.Warn(context.Background(), "4000003"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
