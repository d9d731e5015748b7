package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/recipients/ldapdir/ldaptest"
	"herald/internal/target/smtp/smtptest"
	"herald/internal/testkit"
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
		"ldap: stoney\n\tbind-password "+ldaptest.BindPassword+"\n\nsmtp: owners\n", 0o600)
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

// TestLocalMailboxesReadWithMailx: the daemon runs unprivileged (user
// daemon, group mail, as herald.service runs it as herald), the real
// herald-mbox-create helper sits behind a socket as systemd's Accept=yes
// runs it (systemd-socket-activate --accept --inetd), and mail for root and
// for the unprivileged user nobody lands in a /var/mail-style directory:
// each mailbox owned by its user, group mail, 0660. Root and nobody then read
// their mail with bsd-mailx's `mail -f`, nobody with its own uid.
func TestLocalMailboxesReadWithMailx(t *testing.T) {
	mailx := needTool(t, "bsd-mailx")
	setpriv := needTool(t, "setpriv")
	activate := needTool(t, "systemd-socket-activate")
	if os.Geteuid() != 0 {
		t.Fatal("this test runs the daemon as another user and hands mailboxes to users: run it as root (make test does)")
	}
	runAs, err := user.Lookup("daemon")
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	mailGroup, err := user.LookupGroup("mail")
	if err != nil {
		t.Fatal(err)
	}
	mailGID, _ := strconv.Atoi(mailGroup.Gid)

	d := newDaemon(t, `file: events
	path %[1]s/events.jsonl

sendmail: local
	mailto root
	mailto nobody@localhost

matcher: everything
	target events
	target local
`)
	// Everything the unprivileged daemon needs must be reachable by it: a
	// world-traversable base with the binaries, its config and state.
	base := t.TempDir()
	for _, p := range []string{filepath.Dir(base), base, filepath.Dir(d.configDir), d.configDir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(runAs.Uid)
	gid, _ := strconv.Atoi(runAs.Gid)
	if err := os.MkdirAll(d.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d.stateDir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// A mail spool like Debian's /var/mail: root:mail 2775.
	varMail := filepath.Join(base, "mail")
	if err := os.Mkdir(varMail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(varMail, 0, mailGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(varMail, 0o775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	// The helper, built with this spool compiled in (it never takes a
	// directory from its caller), served per connection like
	// herald-mbox.socket does.
	bin := filepath.Join(base, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(bin, "herald-mbox-create")
	build := exec.Command("go", "build", "-ldflags", "-X main.dir="+varMail, "-o", helper, "./cmd/herald-mbox-create")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build herald-mbox-create: %v\n%s", err, out)
	}
	sock := filepath.Join(base, "mbox.sock")
	act := exec.Command(activate, "--listen="+sock, "--accept", "--inetd", helper)
	actLog := &testkit.Buffer{}
	act.Stdout, act.Stderr = actLog, actLog
	if err := act.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = act.Process.Kill(); _ = act.Wait() })
	waitFor(t, "the helper socket", 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	// herald-mbox.socket: root:herald 0660; here the daemon's group.
	if err := os.Chown(sock, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		t.Fatal(err)
	}
	// herald and its commands run as the unprivileged user with group mail.
	realHerald := filepath.Join(bin, "herald")
	if b, err := os.ReadFile(d.herald); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(realHerald, b, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(bin, "herald-as-daemon")
	writeFile(t, wrapper, fmt.Sprintf("#!/bin/sh\nexec %s --reuid=%s --regid=%s --groups=%s %s \"$@\"\n",
		setpriv, runAs.Uid, runAs.Gid, mailGroup.Gid, realHerald), 0o755)
	d.herald = wrapper

	cfg := filepath.Join(d.configDir, "herald.cfg")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^mail-dir .*$`).ReplaceAllString(string(b), "mail-dir "+varMail)
	writeFile(t, cfg, text+"aliases-file "+filepath.Join(d.configDir, "aliases")+"\nmailbox-helper "+sock+"\n", 0o644)
	d.start()
	d.run("Subject: disk almost full\n\nsee df -h\n", d.shim, "root")
	d.waitEvent("disk almost full")
	waitFor(t, "both mailboxes", 30*time.Second, func() bool {
		return fileHas(filepath.Join(varMail, "root"), "see df -h") && fileHas(filepath.Join(varMail, "nobody"), "see df -h")
	})
	for _, who := range []*user.User{{Username: "root", Uid: "0", Gid: "0"}, nobody} {
		path := filepath.Join(varMail, who.Username)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o660 || strconv.Itoa(int(st.Uid)) != who.Uid || int(st.Gid) != mailGID {
			t.Errorf("%s: mode %v uid %d gid %d, want 0660 %s:mail", path, fi.Mode().Perm(), st.Uid, st.Gid, who.Username)
		}
		args := []string{mailx, "-N", "-f", path}
		if who.Username != "root" {
			args = append([]string{setpriv, "--reuid=" + who.Uid, "--regid=" + who.Gid, "--clear-groups"}, args...)
		}
		out, code := d.runCode("p 1\nq\n", []string{"MAILRC=/dev/null", "HOME=" + base}, args[0], args[1:]...)
		if code != 0 || !strings.Contains(out, "Subject: disk almost full") || !strings.Contains(out, "see df -h") {
			t.Errorf("mail -f %s as %s: exit %d\n%s", path, who.Username, code, out)
		}
	}
	// The daemon really ran unprivileged: it could not have made these
	// files itself.
	if st, err := os.Stat(filepath.Join(d.stateDir, "queue")); err != nil || int(st.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("the daemon's queue is not owned by %s: %v", runAs.Username, err)
	}
}

func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}
