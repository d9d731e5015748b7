package recipients

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/aliases"
	"herald/internal/event"
)

// fakeAccounts answers from a map; err, when set, is returned for every
// look-up.
type fakeAccounts struct {
	name string
	m    map[string]Warning
	err  error
}

func (f *fakeAccounts) Warn(_ context.Context, id string) (Warning, error) {
	if f.err != nil {
		return Warning{}, f.err
	}
	return f.m[id], nil
}
func (f *fakeAccounts) String() string { return f.name }

func TestLookupResolve(t *testing.T) {
	users, err := ParseUsers(strings.NewReader("user:alice@pve:1:0:Alice:A:alice@example.com::\nuser:bob@pve:1:0:::bob::\n"))
	if err != nil {
		t.Fatal(err)
	}
	tab, _, err := aliases.Parse(strings.NewReader("postmaster: root\nroot: admin@example.com, ops\nops: ops1@example.com,\n  ops2@example.com\nbob: \\bob, bob@example.org\nloop1: loop2\nloop2: loop1\npipe: |/bin/cat\n"))
	if err != nil {
		t.Fatal(err)
	}
	acc := &fakeAccounts{name: "ldap test", m: map[string]Warning{
		"42":    {Found: true, Addresses: []string{"owner@example.com", "root"}},
		"off":   {Found: true, Off: true},
		"empty": {Found: true},
	}}
	l := &Lookup{Users: users, Aliases: tab, Hostname: "pve1.example.com", Accounts: []Accounts{acc}}
	ev := func(fields map[string]string) *event.Event { return &event.Event{ID: "e1", Fields: fields} }
	tests := []struct {
		name    string
		spec    Spec
		ev      *event.Event
		want    []string
		off     []string
		errPart string
		temp    bool
	}{
		{name: "aliases nested and continued, users", spec: Spec{Mailto: []string{"postmaster"}, MailtoUser: []string{"alice@pve"}},
			want: []string{"admin@example.com", "ops1@example.com", "ops2@example.com", "alice@example.com"}},
		{name: "root@pam without address goes through root's alias", spec: Spec{MailtoUser: []string{"root@pam"}},
			want: []string{"admin@example.com", "ops1@example.com", "ops2@example.com"}},
		{name: "local user keeps a copy", spec: Spec{MailtoUser: []string{"bob@pve"}}, want: []string{"bob", "bob@example.org"}},
		{name: "remote addresses are not aliased", spec: Spec{Mailto: []string{"root@example.com"}}, want: []string{"root@example.com"}},
		{name: "host-qualified local address", spec: Spec{Mailto: []string{"ops@pve1"}}, want: []string{"ops1@example.com", "ops2@example.com"}},
		{name: "field from the directory, aliased", spec: Spec{Mailto: []string{"x@example.com"}, Field: "account"}, ev: ev(map[string]string{"account": "42"}),
			want: []string{"x@example.com", "owner@example.com", "admin@example.com", "ops1@example.com", "ops2@example.com"}},
		{name: "field falls back to the users file", spec: Spec{Field: "account"}, ev: ev(map[string]string{"account": "alice@pve"}),
			want: []string{"alice@example.com"}},
		{name: "event without the field: static list", spec: Spec{Mailto: []string{"x@example.com"}, Field: "account"}, ev: ev(nil),
			want: []string{"x@example.com"}},
		{name: "explain without an event: static list", spec: Spec{Mailto: []string{"x@example.com"}, Field: "account"},
			want: []string{"x@example.com"}},
		{name: "flag off", spec: Spec{Mailto: []string{"x@example.com"}, Field: "account"}, ev: ev(map[string]string{"account": "off"}),
			want: []string{"x@example.com"}, off: []string{"off"}},
		{name: "unknown account", spec: Spec{Field: "account"}, ev: ev(map[string]string{"account": "nobody"}),
			errPart: `no recipient for "nobody": not found in ldap test or the users file`},
		{name: "account without addresses", spec: Spec{Field: "account"}, ev: ev(map[string]string{"account": "empty"}),
			errPart: `account "empty" has no mail addresses`},
		{name: "alias loop", spec: Spec{Mailto: []string{"loop1"}}, errPart: "alias loop: loop1 → loop2 → loop1"},
		{name: "only skipped entries", spec: Spec{Mailto: []string{"pipe", "a@example.com"}}, want: []string{"a@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Resolve(context.Background(), tc.spec, tc.ev)
			if tc.errPart != "" {
				var le *LookupError
				if !errors.As(err, &le) || le.Temp != tc.temp || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("Resolve = %+v, %v; want error with %q (temporary %v)", res, err, tc.errPart, tc.temp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.To, tc.want) || !slices.Equal(res.Off, tc.off) {
				t.Fatalf("Resolve = %q (off %q), want %q (off %q)", res.To, res.Off, tc.want, tc.off)
			}
		})
	}
}

func TestLookupDirectoryDownIsTemporary(t *testing.T) {
	down := &fakeAccounts{name: "down", err: errors.New("connection refused")}
	l := &Lookup{Accounts: []Accounts{down, &fakeAccounts{name: "other", m: map[string]Warning{"42": {Found: true, Addresses: []string{"a@b"}}}}}}
	_, err := l.Resolve(context.Background(), Spec{Field: "account"}, &event.Event{Fields: map[string]string{"account": "42"}})
	var le *LookupError
	if !errors.As(err, &le) || !le.Temp {
		t.Fatalf("first directory down: %v, want a temporary error (it may have been the one that knows)", err)
	}
}

// TestLookupRereadsChangedAliases: an edited aliases file applies at the
// next resolution, without a reload; a broken edit keeps what worked.
func TestLookupRereadsChangedAliases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aliases")
	write := func(text string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	write("root: first@example.com\n", now.Add(-time.Hour))
	tab, _, err := aliases.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l := &Lookup{Aliases: tab, AliasesFile: path}
	resolve := func() []string {
		t.Helper()
		r, err := l.Resolve(context.Background(), Spec{Mailto: []string{"root"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.To
	}
	if got := resolve(); !slices.Equal(got, []string{"first@example.com"}) {
		t.Fatalf("before the edit: %q", got)
	}
	write("root: second@example.com, third@example.com\n", now)
	if got := resolve(); !slices.Equal(got, []string{"second@example.com", "third@example.com"}) {
		t.Fatalf("after the edit: %q", got)
	}
	// A file that cannot be read (here: replaced by a directory) keeps the
	// previous table.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := resolve(); !slices.Equal(got, []string{"second@example.com", "third@example.com"}) {
		t.Fatalf("unreadable aliases file: %q, want the previous table", got)
	}
}
