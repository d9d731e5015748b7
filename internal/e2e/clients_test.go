package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/event"
)

// checkEvent asserts the common shape of a mail-made event.
func checkEvent(t *testing.T, ev event.Event, wantBody string, fields map[string]string) {
	t.Helper()
	if ev.Severity != event.Unknown || ev.Fields["type"] != "system-mail" {
		t.Errorf("severity %s type %q, want unknown system-mail", ev.Severity, ev.Fields["type"])
	}
	if ev.Fields["hostname"] != "testhost" {
		t.Errorf("hostname field %q, want testhost (herald.cfg)", ev.Fields["hostname"])
	}
	if wantBody != "" && !strings.Contains(ev.Body, wantBody) {
		t.Errorf("body %q does not contain %q", ev.Body, wantBody)
	}
	for k, v := range fields {
		if ev.Fields[k] != v {
			t.Errorf("field %s = %q, want %q (all: %v)", k, ev.Fields[k], v, ev.Fields)
		}
	}
	if ev.ID == "" || ev.Timestamp.IsZero() {
		t.Errorf("event without id or timestamp: %+v", ev)
	}
}

func TestRealSMTPClients(t *testing.T) {
	bsmtp := needTool(t, "bsmtp")
	swaks := needTool(t, "swaks")
	python := needTool(t, "python3")
	d := newDaemon(t, "")
	d.start()
	port := fmt.Sprint(d.port)

	t.Run("bsmtp", func(t *testing.T) {
		subj := "Bacula: Backup OK of client-fd Incremental"
		d.run("Job: nightly\nTermination: Backup OK\n", bsmtp, "-h", "127.0.0.1:"+port,
			"-f", "(Bacula) <bacula@example.org>", "-s", subj, "root@localhost")
		ev := d.waitEvent(subj)
		checkEvent(t, ev, "Termination: Backup OK", map[string]string{"to": "root@localhost", "subject": subj})
		if !strings.Contains(ev.Fields["from"], "bacula@example.org") {
			t.Errorf("from field %q", ev.Fields["from"])
		}
	})
	t.Run("swaks-ipv4", func(t *testing.T) {
		d.run("", swaks, "--server", "127.0.0.1", "--port", port, "--from", "a@example.org",
			"--to", "root@localhost", "--header", "Subject: swaks over ipv4", "--body", "hello from swaks")
		checkEvent(t, d.waitEvent("swaks over ipv4"), "hello from swaks", map[string]string{"from": "a@example.org"})
	})
	t.Run("swaks-ipv6-pipelining", func(t *testing.T) {
		d.run("", swaks, "--server", "::1", "--port", port, "--pipeline", "--from", "b@example.org",
			"--to", "root@localhost", "--header", "Subject: swaks over ipv6", "--body", "hello v6")
		checkEvent(t, d.waitEvent("swaks over ipv6"), "hello v6", nil)
	})
	t.Run("python-smtplib-utf8", func(t *testing.T) {
		script := `
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "smartd@example.org"
m["To"] = "root@localhost"
m["Subject"] = "Smart-Fehler auf /dev/sda – prüfen"
m.set_content("Die Platte /dev/sda meldet 8 defekte Sektoren.\n")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.send_message(m)
`
		d.run("", python, "-c", script, port)
		checkEvent(t, d.waitEvent("Smart-Fehler auf /dev/sda – prüfen"), "8 defekte Sektoren", nil)
	})
}

// The argv sets real callers pass to /usr/sbin/sendmail (docs/clients.md §3).
func TestShimRealCallers(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	cases := []struct {
		name  string
		args  []string
		input string
		title string
		body  string
	}{
		{"cron", []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "admin@example.org,ops@example.org"},
			"From: root (Cron Daemon)\nTo: admin@example.org,ops@example.org\nSubject: Cron <root@pve1> /usr/local/bin/job\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\nline one\n.\nlast line without newline",
			"Cron <root@pve1> /usr/local/bin/job", "last line without newline"},
		{"mailx", []string{"-i", "-t"},
			"To: root\nBcc: secret@example.org\nSubject: mailx -i -t\nMIME-Version: 1.0\nContent-Type: text/plain; charset=\"UTF-8\"\nContent-Transfer-Encoding: 8bit\n\nbody from mailx\n.\nafter the dot\n",
			"mailx -i -t", "after the dot"},
		{"mailutils", []string{"-oi", "-f", "root@pve1", "-t"},
			"Subject: mailutils\nTo: <root@localhost>\nUser-Agent: mail (GNU Mailutils 3.15)\nDate: Sat, 21 Nov 2026 12:00:00 +0000\n\nmailutils body\n",
			"mailutils", "mailutils body"},
		{"php", []string{"-t", "-i"},
			"To: root@localhost\nSubject: php mail()\n\nfrom php\n",
			"php mail()", "from php"},
		{"logwatch-dot-ends", []string{"-t"},
			"To: root\nFrom: root\nSubject: Logwatch for pve1 (Linux)\n\nkept\n.\nnot part of the message\n",
			"Logwatch for pve1 (Linux)", "kept"},
		{"proxmox", []string{"-B", "8BITMIME", "-f", "root@pve1", "--", "root@localhost"},
			"From: Proxmox VE <root@pve1>\nTo: root@localhost\nSubject: vzdump backup status (pve1): backup successful\nAuto-Submitted: auto-generated;\n\nDetails\n",
			"vzdump backup status (pve1): backup successful", "Details"},
		{"git-send-email", []string{"-i", "dev@example.org", "list@example.org"},
			"From: Dev <dev@example.org>\nTo: list@example.org\nSubject: [PATCH] fix\nMessage-Id: <1@example.org>\nDate: Sat, 21 Nov 2026 12:00:00 +0000\n\npatch body\n",
			"[PATCH] fix", "patch body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d.run(c.input, d.shim, c.args...)
			ev := d.waitEvent(c.title)
			if c.name == "cron" { // the cron classifier recognises cron's mail
				checkClassified(t, ev, "cron", event.Info, map[string]string{"hostname": "pve1", "user": "root",
					"command": "/usr/local/bin/job", "job-status": "ok"})
				return
			}
			checkEvent(t, ev, c.body, nil)
			if c.name == "logwatch-dot-ends" && strings.Contains(ev.Body, "not part") {
				t.Errorf("without -i a lone dot must end the message; body %q", ev.Body)
			}
			if c.name == "mailx" && strings.Contains(string(ev.Body), "secret@example.org") {
				t.Errorf("Bcc leaked into the body")
			}
		})
	}
	// The Bcc header must be gone from the stored mail (mbox), and the mbox
	// must hold each message once.
	mbox, err := os.ReadFile(filepath.Join(d.stateDir, "mail", "root"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mbox), "Bcc:") {
		t.Errorf("a Bcc header reached the mailbox")
	}
}

func TestBSDMailx(t *testing.T) {
	mailx := needTool(t, "bsd-mailx")
	d := newDaemon(t, "")
	d.start()
	rc := filepath.Join(t.TempDir(), "mailrc")
	writeFile(t, rc, "set sendmail="+d.shim+"\n", 0o644)
	out, code := d.runCode("SMART error detected on /dev/sdb\n", []string{"MAILRC=" + rc}, mailx,
		"-s", "SMART error (EmailTest) detected on host: pve1", "root")
	if code != 0 {
		t.Fatalf("mail exited %d: %s", code, out)
	}
	ev := d.waitEvent("SMART error (EmailTest) detected on host: pve1")
	checkEvent(t, ev, "SMART error detected on /dev/sdb", nil)
}

func TestShimSMTPDialogue(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	dialogue := "HELO php\r\nMAIL FROM:<app@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\nSubject: via -bs\r\n\r\nsent with sendmail -bs\r\n.\r\nQUIT\r\n"
	out := d.run(dialogue, d.shim, "-bs")
	for _, want := range []string{"220 ", "250 ", "354 ", "221 "} {
		if !strings.Contains(out, want) {
			t.Errorf("-bs dialogue lacks a %q reply:\n%s", want, out)
		}
	}
	checkEvent(t, d.waitEvent("via -bs"), "sent with sendmail -bs", nil)
}

func TestShimWhileDaemonDown(t *testing.T) {
	d := newDaemon(t, "")
	// The daemon has never run: the shim creates nothing it cannot, so the
	// state dir must exist as the daemon would make it. Start once to set
	// it up, stop, then submit while down.
	d.start()
	d.stop()
	d.run("Subject: while down\n\nqueued while the daemon was stopped\n", d.shim, "root")
	d.start()
	checkEvent(t, d.waitEvent("while down"), "queued while the daemon was stopped", nil)
}

func TestNotify(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	d.run("", d.herald, "notify", "--severity", "error", "--type", "vzdump", "--field", "job-id=nightly",
		"--title", "backup failed", "--body", "see the log")
	ev := d.waitEvent("backup failed")
	if ev.Severity != event.Error || ev.Fields["type"] != "vzdump" || ev.Fields["job-id"] != "nightly" || ev.Body != "see the log" {
		t.Fatalf("event %+v", ev)
	}
	d.run("body from stdin\n", d.herald, "notify", "--severity", "info", "--type", "test", "--title", "stdin", "--body-file", "-")
	if ev := d.waitEvent("stdin"); ev.Body != "body from stdin\n" {
		t.Fatalf("body %q", ev.Body)
	}
	if _, code := d.runCode("", nil, d.herald, "notify", "--severity", "bad", "--type", "x"); code != 64 {
		t.Fatalf("bad severity: exit %d, want 64", code)
	}
}

// An unprivileged user may not write the maildrop (only the setgid shim
// may): herald notify then submits through the daemon's HTTP API.
func TestNotifyAsUnprivilegedUser(t *testing.T) {
	setpriv := needTool(t, "setpriv")
	if os.Geteuid() != 0 {
		t.Fatal("this test switches to the user nobody and must run as root (CI does)")
	}
	d := newDaemon(t, "")
	d.start()
	// nobody must reach the binaries and the config, not the state.
	for _, p := range []string{bins.dir, filepath.Dir(d.configDir), filepath.Dir(filepath.Dir(d.configDir)), d.configDir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(d.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, code := d.runCode("", nil, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", d.herald,
		"notify", "--severity", "warning", "--type", "quota", "--title", "from nobody")
	if code != 0 {
		t.Fatalf("herald notify as nobody: exit %d\n%s", code, out)
	}
	ev := d.waitEvent("from nobody")
	if ev.Severity.String() != "warning" || ev.Fields["type"] != "quota" {
		t.Fatalf("event %+v", ev)
	}
}

// herald.cfg's spool-dir moves the spool: the daemon, the shim and herald
// notify all find it there.
func TestConfiguredSpoolDir(t *testing.T) {
	d := newDaemon(t, "")
	spoolDir := filepath.Join(t.TempDir(), "elsewhere", "spool")
	cfgPath := filepath.Join(d.configDir, "herald.cfg")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, string(cfg)+"spool-dir "+spoolDir+"\n", 0o644)
	d.start()
	d.run("Subject: via spool-dir\n\nmoved\n", d.shim, "root")
	checkEvent(t, d.waitEvent("via spool-dir"), "moved", nil)
	d.run("", d.herald, "notify", "--severity", "info", "--type", "t", "--title", "notify via spool-dir")
	d.waitEvent("notify via spool-dir")
	if _, err := os.Stat(filepath.Join(spoolDir, "maildrop")); err != nil {
		t.Fatalf("the spool is not where herald.cfg says: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.stateDir, "spool")); !os.IsNotExist(err) {
		t.Fatalf("a spool was made in the state directory too (%v)", err)
	}
}
