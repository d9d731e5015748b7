package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"herald/internal/event"
)

// checkClassified asserts a classified event's type, severity and fields.
func checkClassified(t *testing.T, ev event.Event, typ string, sev event.Severity, fields map[string]string) {
	t.Helper()
	if ev.Fields["type"] != typ || ev.Severity != sev {
		t.Errorf("type %q severity %s, want %q %s (fields %v)", ev.Fields["type"], ev.Severity, typ, sev, ev.Fields)
	}
	for k, v := range fields {
		if ev.Fields[k] != v {
			t.Errorf("field %s = %q, want %q (all: %v)", k, ev.Fields[k], v, ev.Fields)
		}
	}
}

// sample reads a sample mail of testdata/classify and splits it into
// header and body.
func sample(t *testing.T, name string) (raw, body string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(), "testdata", "classify", name))
	if err != nil {
		t.Fatal(err)
	}
	_, bd, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		t.Fatalf("%s has no body", name)
	}
	return string(b), string(bd)
}

func shortHostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

// Bacula's director runs bsmtp with its default mailcommand; the report
// arrives over SMTP (bsmtp's HELO dialogue) and becomes a bacula event
// whose hostname is the director's host (bsmtp's Sender).
func TestClassifyBsmtpIntoDaemon(t *testing.T) {
	bsmtp := needTool(t, "bsmtp")
	d := newDaemon(t, "")
	d.start()
	_, report := sample(t, "bacula-backup-error.eml")
	subj := "Bacula: Backup Fatal Error of web1-fd Full"
	d.run(report, bsmtp, "-h", "127.0.0.1:"+strconv.Itoa(d.port), "-f", "(Bacula) <root@localhost>", "-s", subj, "root@localhost")
	ev := d.waitEvent(subj)
	checkClassified(t, ev, "bacula", event.Error, map[string]string{"hostname": shortHostname(t),
		"job-type": "Backup", "job-status": "Fatal Error", "client": "web1-fd", "level": "Full",
		"job": "web1-fd-backup", "job-id": "2291"})
	if !strings.Contains(d.log(), `classifier=bacula`) {
		t.Errorf("the journal line does not name the classifier:\n%s", d.log())
	}
}

// Debian cron's argv and mail (captured from cron 3.0pl1 running a failing
// job) through the shim.
func TestClassifyCronThroughShim(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	raw, _ := sample(t, "cron-failed.eml")
	d.run(raw, d.shim, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root")
	ev := d.waitEvent(`Cron <root@vm> test -d /srv/backup-target || { echo "backup target /srv/backup-target missing"; exit 2; } (failed)`)
	checkClassified(t, ev, "cron", event.Error, map[string]string{"hostname": "vm", "user": "root", "job-status": "failed",
		"command": `test -d /srv/backup-target || { echo "backup target /srv/backup-target missing"; exit 2; }`})
}

// smartd's own warning script, run with the environment smartd gives it,
// mails through GNU mailutils' mail (as Debian's smartd-runner does through
// /usr/bin/mail), which runs the shim as its sendmail.
func TestClassifySmartdThroughShim(t *testing.T) {
	mail := needTool(t, "mail.mailutils")
	script := "/usr/share/smartmontools/smartd_warning.sh"
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("%s is missing: run scripts/install-test-deps.sh as root (installs smartmontools)", script)
	}
	d := newDaemon(t, "")
	d.start()
	rc := filepath.Join(t.TempDir(), "mailrc")
	writeFile(t, rc, "set sendmail=sendmail://"+d.shim+"\n", 0o644)
	out, code := d.runCode("", []string{"MAILRC=" + rc, "SMARTD_MAILER=" + mail, "SMARTD_ADDRESS=root",
		"SMARTD_DEVICE=/dev/sdc", "SMARTD_DEVICETYPE=sat", "SMARTD_DEVICESTRING=/dev/sdc [SAT]",
		"SMARTD_DEVICEINFO=ST4000VN008-2DR166, S/N:ZGY1234A, WWN:5-000c50-0a1b2c3d4, FW:SC60, 4.00 TB",
		"SMARTD_FAILTYPE=OfflineUncorrectableSector",
		"SMARTD_MESSAGE=Device: /dev/sdc [SAT], 16 Offline uncorrectable sectors",
		"SMARTD_FULLMESSAGE=Device: /dev/sdc [SAT], 16 Offline uncorrectable sectors",
		"SMARTD_TFIRST=Wed Dec  2 05:30:01 2026 UTC", "SMARTD_TFIRSTEPOCH=1796189401", "SMARTD_NEXTDAYS=1"}, script)
	if code != 0 {
		t.Fatalf("smartd_warning.sh exited %d: %s", code, out)
	}
	ev := d.waitEvent("SMART error (OfflineUncorrectableSector) detected on host: " + shortHostname(t))
	checkClassified(t, ev, "smartd", event.Error, map[string]string{"hostname": shortHostname(t),
		"device": "/dev/sdc", "failtype": "OfflineUncorrectableSector"})
}
