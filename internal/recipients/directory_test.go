package recipients

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pveUsers is /etc/pve/user.cfg as PVE writes it (user, group, token, acl
// lines), with the address in the seventh field.
const pveUsers = `user:root@pam:1:0:::root@example.org:::
user:alice@pve:1:0:Alice:Doe: alice@example.org :comment::
user:bob@pve:1:0:Bob:::::
user:carol@pve:0:0:Carol:C:carol@example.org
token:root@pam!monitoring:0:1::
group:admins:alice@pve,bob@pve::
acl:1:/:@admins:Administrator:
user:alice@pve:1:0:::second@example.org::
user:short@pve:1
`

// pbsUsers is /etc/proxmox-backup/user.cfg: section config, tabs or spaces.
const pbsUsers = "user: root@pam\n" +
	"\temail root@backup.example.org\n" +
	"\tenable true\n" +
	"\texpire 0\n" +
	"\n" +
	"token: root@pam!sync\n" +
	"\temail token@example.org\n" +
	"\tcomment sync token\n" +
	"\n" +
	"user: alice@pbs\n" +
	"    comment Alice\n" +
	"    email   alice@example.org  \n" +
	"\n" +
	"user: nomail@pbs\n" +
	"\tenable true\n" +
	"\n" +
	"user: empty@pbs\n" +
	"\temail \n" +
	"\n" +
	"user: broken@pbs\n" +
	"\temail a b@example.org\n"

func TestParseUsers(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"pve", pveUsers, map[string]string{
			"root@pam":  "root@example.org",
			"alice@pve": "alice@example.org", // first line wins, trimmed
			"carol@pve": "carol@example.org", // disabled users still resolve, as in Proxmox
		}},
		{"pbs", pbsUsers, map[string]string{
			"root@pam":  "root@backup.example.org",
			"alice@pbs": "alice@example.org",
		}},
		{"pbs-crlf", strings.ReplaceAll(pbsUsers, "\n", "\r\n"), map[string]string{
			"root@pam":  "root@backup.example.org",
			"alice@pbs": "alice@example.org",
		}},
		{"mixed", pveUsers + "\n" + strings.Replace(pbsUsers, "root@pam", "admin@pbs", 1), map[string]string{
			"root@pam":  "root@example.org",
			"alice@pve": "alice@example.org",
			"carol@pve": "carol@example.org",
			"admin@pbs": "root@backup.example.org",
			"alice@pbs": "alice@example.org",
		}},
		{"no-final-newline", "user: x@pbs\n\temail x@example.org", map[string]string{"x@pbs": "x@example.org"}},
		{"property-outside-section", "\temail stray@example.org\nuser:a@pve:1:0:::a@example.org", map[string]string{"a@pve": "a@example.org"}},
		{"empty", "", map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseUsers(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(u.addr, tc.want) {
				t.Errorf("got %v, want %v", u.addr, tc.want)
			}
			for id, want := range tc.want {
				if got, ok := u.Address(id); !ok || got != want {
					t.Errorf("Address(%q) = %q, %v", id, got, ok)
				}
			}
			for _, id := range []string{"bob@pve", "nomail@pbs", "empty@pbs", "broken@pbs", "root@pam!sync", "unknown@pve"} {
				if _, ok := tc.want[id]; ok {
					continue
				}
				if got, ok := u.Address(id); ok {
					t.Errorf("Address(%q) = %q, want none", id, got)
				}
			}
		})
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	u, err := LoadUsers(filepath.Join(dir, "missing.cfg"))
	if err != nil || u.Len() != 0 {
		t.Fatalf("missing file: %v, %v users; want empty, no error", err, u.Len())
	}
	path := filepath.Join(dir, "user.cfg")
	if err := os.WriteFile(path, []byte(pbsUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err = LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := u.Address("root@pam"); !ok || a != "root@backup.example.org" {
		t.Errorf("root@pam = %q, %v", a, ok)
	}
	if strings.Contains(u.String(), "@") {
		t.Errorf("String() lists addresses: %s", u)
	}
	// A directory is not a readable users file.
	if _, err := LoadUsers(dir); err == nil {
		t.Errorf("LoadUsers(directory) succeeded")
	}
	var nilUsers *Users
	if _, ok := nilUsers.Address("root@pam"); ok || nilUsers.Len() != 0 {
		t.Errorf("nil *Users is not empty")
	}
}

func TestRecipients(t *testing.T) {
	u, err := ParseUsers(strings.NewReader(pveUsers))
	if err != nil {
		t.Fatal(err)
	}
	noRoot, err := ParseUsers(strings.NewReader("user:alice@pve:1:0:::alice@example.org::\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		mailto     []string
		mailtoUser []string
		r          Resolver
		want       []string
		warns      []string
	}{
		{"mailto-order-dedup", []string{"b@x", "a@x", "b@x", " ", "c@x"}, nil, u, []string{"b@x", "a@x", "c@x"}, nil},
		{"users-appended", []string{"ops@x"}, []string{"alice@pve", "root@pam"}, u,
			[]string{"ops@x", "alice@example.org", "root@example.org"}, nil},
		{"user-already-in-mailto", []string{"alice@example.org", "ops@x"}, []string{"alice@pve"}, u,
			[]string{"alice@example.org", "ops@x"}, nil},
		{"unresolvable-skipped", nil, []string{"bob@pve", "ghost@pve", "alice@pve"}, u,
			[]string{"alice@example.org"}, []string{"'bob@pve' does not have", "'ghost@pve' does not have"}},
		{"root-fallback", nil, []string{"root@pam"}, noRoot, []string{"root"}, nil},
		{"root-fallback-nil-resolver", []string{"root"}, []string{"root@pam"}, nil, []string{"root"}, nil},
		{"root-resolved", nil, []string{"root@pam"}, u, []string{"root@example.org"}, nil},
		{"nothing", nil, nil, u, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			got := Recipients(tc.mailto, tc.mailtoUser, tc.r, log)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if logs.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tc.warns) {
				t.Fatalf("warnings:\n%s\nwant %d", logs.String(), len(tc.warns))
			}
			for i, w := range tc.warns {
				if !strings.Contains(lines[i], w) || !strings.Contains(lines[i], "level=WARN") {
					t.Errorf("warning %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
	// A nil logger is allowed.
	if got := Recipients(nil, []string{"ghost@pve"}, u, nil); got != nil {
		t.Errorf("got %q", got)
	}
}

func FuzzParseUsers(f *testing.F) {
	f.Add(pveUsers)
	f.Add(pbsUsers)
	f.Add("user:a:b\n\temail x\nuser: \n\temail y\n")
	f.Add("user: a@pbs\r\n\temail \t a@x \r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		u, err := ParseUsers(strings.NewReader(in))
		if err != nil {
			t.Fatalf("error from a reader that cannot fail: %v", err)
		}
		for id, a := range u.addr {
			if id == "" || !usable(a) {
				t.Fatalf("bad entry %q -> %q", id, a)
			}
		}
		// Line ends do not matter.
		u2, err := ParseUsers(strings.NewReader(strings.ReplaceAll(in, "\n", "\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(u.addr, u2.addr) {
			t.Fatalf("LF %v != CRLF %v", u.addr, u2.addr)
		}
	})
}
