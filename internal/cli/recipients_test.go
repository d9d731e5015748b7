package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"herald/internal/recipients/ldapdir/ldaptest"
)

// recipientsDir writes a config directory: herald.cfg naming an aliases
// file, the aliases, a user.cfg and notifications.cfg (+ private file).
func recipientsDir(t *testing.T, aliasesText, notifications, priv string) string {
	t.Helper()
	d := t.TempDir()
	write := func(name, text string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(d, name), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("herald.cfg", "hostname pve1\naliases-file "+filepath.Join(d, "aliases")+"\n", 0o644)
	write("aliases", aliasesText, 0o644)
	write("user.cfg", "user:alice@pve:1:0:Alice:A:alice@example.com::\nuser:bob@pve:1:0:::::\n", 0o644)
	write("notifications.cfg", notifications, 0o644)
	write("notifications-priv.cfg", priv, 0o600)
	return d
}

const recipientsAliases = `# nested and continued
postmaster: root
root: admin@example.com, ops
ops: ops1@example.com,
  ops2@example.com
tool: |/usr/bin/procmail, admin@example.com
loop1: loop2
loop2: loop1
`

// explainRecipients runs explain and returns its "recipients" object.
func explainRecipients(t *testing.T, dir, ev string) map[string]json.RawMessage {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ev.json")
	if err := os.WriteFile(f, []byte(ev), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "", "explain", "--config-dir", dir, "--event", f)
	if code != 0 {
		t.Fatalf("explain exit %d: %s", code, stderr)
	}
	var x struct {
		Recipients map[string]json.RawMessage `json:"recipients"`
	}
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return x.Recipients
}

func list(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatalf("not a list of addresses: %s", raw)
	}
	return l
}

func TestExplainRecipientsAliases(t *testing.T) {
	d := recipientsDir(t, recipientsAliases, `sendmail: t1
	mailto postmaster
	mailto-user alice@pve

sendmail: looping
	mailto loop1@localhost

smtp: relay
	server 127.0.0.1
	port 2599
	mode insecure
	from-address herald@example.com
	mailto tool
	mailto-user root@pam

gotify: phone
	server http://127.0.0.1:1

matcher: everything
	target t1
	target looping
	target relay
	target phone
`, "gotify: phone\n\ttoken tok\n\nsmtp: relay\n")
	r := explainRecipients(t, d, `{"severity":"error","title":"t","fields":{"type":"vzdump"}}`)
	if got := list(t, r["t1"]); !slices.Equal(got, []string{"admin@example.com", "ops1@example.com", "ops2@example.com", "alice@example.com"}) {
		t.Errorf("t1 = %q", got)
	}
	// root@pam has no address: the local root, through its alias; the
	// smtp target then qualifies bare names with the host name.
	if got := list(t, r["relay"]); !slices.Equal(got, []string{"admin@example.com", "ops1@example.com", "ops2@example.com"}) {
		t.Errorf("relay = %q", got)
	}
	var e struct {
		Error     string `json:"error"`
		Temporary bool   `json:"temporary"`
	}
	if err := json.Unmarshal(r["looping"], &e); err != nil || !strings.Contains(e.Error, "alias loop") || e.Temporary {
		t.Errorf("looping = %s, want a permanent loop error", r["looping"])
	}
	if _, ok := r["phone"]; ok {
		t.Errorf("gotify target listed among mail recipients: %s", r["phone"])
	}
}

func TestCheckAliasesFile(t *testing.T) {
	notif := "sendmail: t1\n\tmailto root\n"
	d := recipientsDir(t, "root: admin@example.com\ncron: |/usr/bin/logger\n", notif, "")
	out, stderr, code := run(t, "", "check", "--config-dir", d)
	if code != 0 {
		t.Fatalf("check of a good aliases file: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "aliases:2: warning: alias cron: command entry |/usr/bin/logger is skipped") {
		t.Errorf("skipped |command not reported:\n%s", stderr)
	}
	d = recipientsDir(t, recipientsAliases+"bad line without colon\n", notif, "")
	out, stderr, code = run(t, "", "check", "--config-dir", d)
	all := out + stderr
	if code != 1 {
		t.Fatalf("check of a broken aliases file: exit %d, want 1\n%s", code, all)
	}
	for _, want := range []string{
		"aliases:7: alias loop: loop1 → loop2 → loop1",
		"aliases:8: alias loop: loop2 → loop1 → loop2",
		"aliases:9: expected NAME: ADDRESS, ... (no colon)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("check output lacks %q:\n%s", want, all)
		}
	}
	if !regexp.MustCompile(`(?m)^\S*/aliases:\d+: `).MatchString(all) {
		t.Errorf("no FILE:LINE form:\n%s", all)
	}
}

// TestExplainRecipientsLDAP: mailto-field resolved through a real slapd,
// then the users file; a stopped directory shows as a temporary error, and
// the bind password appears nowhere.
func TestExplainRecipientsLDAP(t *testing.T) {
	srv := ldaptest.Start(t)
	notif := fmt.Sprintf(`ldap: stoney
	server %s
	starttls true
	ca-file %s
	bind-dn %s
	base-dn %s
	person-base-dn %s

sendmail: owners
	mailto ops@example.com
	mailto-field account

matcher: everything
	target owners
`, srv.URL, srv.CAFile, ldaptest.BindDN, ldaptest.AccountBase, ldaptest.PersonBase)
	d := recipientsDir(t, "", notif, "ldap: stoney\n\tbind-password "+ldaptest.BindPassword+"\n")
	ev := func(account string) string {
		return `{"severity":"error","title":"backup quota","fields":{"type":"backup-quota","account":"` + account + `"}}`
	}
	cases := []struct{ account, want string }{
		{"4000002", `["ops@example.com","backup-4000002@example.com"]`},
		{"4000003", `["ops@example.com","alice@example.com","alice.private@example.org"]`},
		{"4000001", `["ops@example.com"]`},                       // warnings off: the static list only
		{"alice@pve", `["ops@example.com","alice@example.com"]`}, // not in LDAP: the users file
	}
	for _, c := range cases {
		r := explainRecipients(t, d, ev(c.account))
		if got := string(r["owners"]); strings.ReplaceAll(strings.ReplaceAll(got, " ", ""), "\n", "") != c.want {
			t.Errorf("account %s: %s, want %s", c.account, got, c.want)
		}
	}
	r := explainRecipients(t, d, ev("4000006"))
	if !strings.Contains(string(r["owners"]), `"error"`) || !strings.Contains(string(r["owners"]), "p-gone") {
		t.Errorf("missing person: %s, want an error", r["owners"])
	}
	srv.Stop()
	f := filepath.Join(t.TempDir(), "ev.json")
	if err := os.WriteFile(f, []byte(ev("4000004")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "", "explain", "--config-dir", d, "--event", f)
	if code != 0 || !strings.Contains(out, `"temporary": true`) || !strings.Contains(out, "no server answered") {
		t.Errorf("directory down: exit %d, want a temporary error object:\n%s%s", code, out, stderr)
	}
	cout, cerr, _ := run(t, "", "check", "--config-dir", d)
	if strings.Contains(out+stderr+cout+cerr, ldaptest.BindPassword) {
		t.Fatal("bind password printed by explain or check")
	}
}
