package e2e

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/directory/ldapdir/ldaptest"
	"herald/internal/target/smtp/smtptest"
)

// TestLDAPDeliveryRetriesUntilDirectoryReturns drives the daemon with
// per-event recipients from a real slapd: while the directory is down the
// delivery waits as a temporary failure (never "nobody", never a wrong
// person), and once it is back `herald queue retry` delivers to exactly the
// owner's addresses. A missing person is a dead letter that `herald queue
// show` explains; an account with warnings off mails nobody. The bind
// password shows nowhere.
func TestLDAPDeliveryRetriesUntilDirectoryReturns(t *testing.T) {
	srv := ldaptest.Start(t)
	sink := smtptest.Start(t, smtptest.Config{})
	d := newDaemon(t, fmt.Sprintf(`file: events
	path %%[1]s/events.jsonl

ldap: stoney
	server %s
	starttls true
	ca-file %s
	bind-dn %s
	base-dn %s
	person-base-dn %s

smtp: owners
	server 127.0.0.1
	port %d
	mode insecure
	from-address herald@testhost.example
	mailto-field account

matcher: everything
	target events

matcher: backups
	match-field exact:type=backup-quota
	target owners
`, srv.URL, srv.CAFile, ldaptest.BindDN, ldaptest.AccountBase, ldaptest.PersonBase, sink.Port))
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"),
		"ldap: stoney\n\tbind-password "+ldaptest.BindPassword+"\n", 0o600)
	aliasesFile := filepath.Join(d.configDir, "aliases")
	writeFile(t, aliasesFile, "postmaster: root\n", 0o644)
	appendFile(t, filepath.Join(d.configDir, "herald.cfg"), "aliases-file "+aliasesFile+"\n")
	srv.Stop()
	d.start()

	notify := func(account string) {
		d.run("", d.herald, "notify", "--severity", "error", "--type", "backup-quota",
			"--field", "account="+account, "--title", "quota of "+account)
	}
	notify("4000003")
	waitFor(t, "a pending delivery while the directory is down", 30*time.Second, func() bool {
		return len(d.queueIDs("pending")) == 1
	})
	id := d.queueIDs("pending")[0]
	show := d.run("", d.herald, "queue", "show", id)
	if !strings.Contains(show, "no server answered") {
		t.Fatalf("queue show of the waiting delivery does not say why:\n%s", show)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d messages sent while the directory was down", n)
	}

	srv.Start()
	d.run("", d.herald, "queue", "retry", id)
	waitFor(t, "the delivery once the directory is back", 30*time.Second, func() bool { return len(sink.Messages()) == 1 })
	m := sink.Messages()[0]
	if want := []string{"alice@example.com", "alice.private@example.org"}; !slices.Equal(m.To, want) {
		t.Fatalf("delivered to %q, want the owner's addresses %q", m.To, want)
	}

	notify("4000006") // belongs to a person who is not in the directory
	waitFor(t, "a dead letter for the missing person", 30*time.Second, func() bool { return len(d.queueIDs("dead")) == 1 })
	show = d.run("", d.herald, "queue", "show", d.queueIDs("dead")[0])
	if !strings.Contains(show, `belongs to person \"p-gone\", who is not in the directory`) &&
		!strings.Contains(show, `belongs to person "p-gone", who is not in the directory`) {
		t.Fatalf("queue show of the dead letter does not name the missing person:\n%s", show)
	}

	notify("4000001") // warnings off
	d.waitEvent("quota of 4000001")
	waitFor(t, "the warnings-off delivery to finish", 30*time.Second, func() bool {
		return len(d.queueIDs("pending"))+len(d.queueIDs("inflight")) == 0
	})
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d messages after the warnings-off account, want still 1", n)
	}
	if len(d.queueIDs("dead")) != 1 {
		t.Fatalf("warnings off became a dead letter:\n%s", d.run("", d.herald, "queue", "list"))
	}
	all := d.log() + show + d.run("", d.herald, "queue", "list")
	if strings.Contains(all, ldaptest.BindPassword) {
		t.Fatal("the bind password was printed")
	}
}

func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLocalMailboxesReadWithMailx: mail for root and for an unprivileged
// user lands in MAIL-DIR/USER laid out as Debian's /var/mail (owner the
// user, group mail, 0660), and each reads it with bsd-mailx's `mail -f`,
// the unprivileged user with its own uid.
func TestLocalMailboxesReadWithMailx(t *testing.T) {
	mailx := needTool(t, "bsd-mailx")
	setpriv := needTool(t, "setpriv")
	if os.Geteuid() != 0 {
		t.Fatal("this test hands mailboxes to other users: run it as root (make test does)")
	}
	d := newDaemon(t, `file: events
	path %[1]s/events.jsonl

sendmail: local
	mailto root
	mailto nobody@localhost

matcher: everything
	target events
	target local
`)
	// A mail spool like Debian's /var/mail: root:mail 2775, reachable by
	// everyone.
	base := t.TempDir()
	varMail := filepath.Join(base, "mail")
	if err := os.Mkdir(varMail, 0o755); err != nil {
		t.Fatal(err)
	}
	mailGroup, err := user.LookupGroup("mail")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(mailGroup.Gid)
	for _, p := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(varMail, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(varMail, 0o2775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(d.configDir, "herald.cfg")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^mail-dir .*$`).ReplaceAllString(string(b), "mail-dir "+varMail)
	writeFile(t, cfg, text+"aliases-file "+filepath.Join(d.configDir, "aliases")+"\n", 0o644)
	d.start()
	d.run("Subject: disk almost full\n\nsee df -h\n", d.shim, "root")
	d.waitEvent("disk almost full")
	waitFor(t, "both mailboxes", 30*time.Second, func() bool {
		return fileHas(filepath.Join(varMail, "root"), "see df -h") && fileHas(filepath.Join(varMail, "nobody"), "see df -h")
	})
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"root", "nobody"} {
		path := filepath.Join(varMail, who)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		wantUID := "0"
		if who == "nobody" {
			wantUID = nobody.Uid
		}
		if fi.Mode().Perm() != 0o660 || strconv.Itoa(int(st.Uid)) != wantUID || int(st.Gid) != gid {
			t.Errorf("%s: mode %v uid %d gid %d, want 0660 %s:mail", path, fi.Mode().Perm(), st.Uid, st.Gid, who)
		}
		args := []string{mailx, "-N", "-f", path}
		if who == "nobody" {
			args = append([]string{setpriv, "--reuid=" + nobody.Uid, "--regid=" + nobody.Gid, "--clear-groups"}, args...)
		}
		out, code := d.runCode("p 1\nq\n", []string{"MAILRC=/dev/null", "HOME=" + base}, args[0], args[1:]...)
		if code != 0 || !strings.Contains(out, "Subject: disk almost full") || !strings.Contains(out, "see df -h") {
			t.Errorf("mail -f %s as %s: exit %d\n%s", path, who, code, out)
		}
	}
}

func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}
