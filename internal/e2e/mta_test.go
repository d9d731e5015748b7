package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests drive herald as the MTA it replaces (docs/mta.md): bsd-mailx
// sending to a remote address through a relay that is Postfix's smtp-sink,
// sendmail -q flushing a backed-off delivery, and mailq as an unprivileged
// user.

// Postfix's smtp-sink, unpacked by scripts/install-test-deps.sh.
const (
	sinkBin = "/opt/herald-test/postfix/usr/sbin/smtp-sink"
	sinkLib = "/opt/herald-test/postfix/usr/lib/postfix"
)

// sink is one smtp-sink process dumping every message into dir.
type sink struct {
	port int
	dir  string
	cmd  *exec.Cmd
	done chan error
}

// startSink runs smtp-sink on port (0: a free one) with extra options
// (e.g. "-r", "rcpt" to answer RCPT with 4xx). It is stopped by stop or at
// the end of the test.
func startSink(t *testing.T, port int, opts ...string) *sink {
	t.Helper()
	if _, err := os.Stat(sinkBin); err != nil {
		t.Fatalf("Postfix smtp-sink not found (%v): run scripts/install-test-deps.sh as root (make test does)", err)
	}
	s := &sink{port: port, dir: t.TempDir()}
	if s.port == 0 {
		s.port = freePort(t)
	}
	args := append(append([]string(nil), opts...), "-d", s.dir+"/%M.")
	if os.Geteuid() == 0 {
		// smtp-sink refuses to run as root without -u, then dumps as that user.
		args = append(args, "-u", "nobody")
		for _, d := range []string{filepath.Dir(s.dir), s.dir} {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.cmd = exec.Command(sinkBin, append(args, "127.0.0.1:"+strconv.Itoa(s.port), "10")...)
	s.cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+sinkLib)
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start smtp-sink: %v", err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	waitFor(t, "smtp-sink to listen on port "+strconv.Itoa(s.port), 5*time.Second, func() bool {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("smtp-sink exited: %v: %s", err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	return s
}

// stop kills this smtp-sink (by its PID) and waits for it.
func (s *sink) stop(t *testing.T) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Errorf("smtp-sink (pid %d) did not exit after kill", s.cmd.Process.Pid)
	}
	s.cmd = nil
}

// dumps returns the complete messages smtp-sink wrote so far.
func (s *sink) dumps(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.dir, "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// waitDump waits for a dump that contains every one of want.
func (s *sink) waitDump(t *testing.T, timeout time.Duration, want ...string) string {
	t.Helper()
	var got string
	waitFor(t, fmt.Sprintf("smtp-sink to receive a message with %q", want), timeout, func() bool {
		for _, d := range s.dumps(t) {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(d, w)
			}
			if ok {
				got = d
				return true
			}
		}
		return false
	})
	return got
}

// newRelayDaemon is a daemon whose herald.cfg relays to 127.0.0.1:port
// with the mail name pve1.example.org.
func newRelayDaemon(t *testing.T, port int) *daemon {
	d := newDaemon(t, "")
	f, err := os.OpenFile(filepath.Join(d.configDir, "herald.cfg"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "relay 127.0.0.1:%d\nrelay-mode insecure\nmail-name pve1.example.org\n", port)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return d
}

// bsd-mailx to a remote and a local recipient: the remote one gets the
// mail as-is through the relay (HELO and sender with the mail name), the
// local one gets it as a notification, and the event records the envelope.
func TestMTAMailxRemoteRecipientThroughRelay(t *testing.T) {
	mailx := needTool(t, "bsd-mailx")
	s := startSink(t, 0)
	d := newRelayDaemon(t, s.port)
	d.start()
	rc := filepath.Join(t.TempDir(), "mailrc")
	writeFile(t, rc, "set sendmail="+d.shim+"\n", 0o644)
	out, code := d.runCode("numbers of the week\n", []string{"MAILRC=" + rc}, mailx, "-s", "weekly report", "boss@example.com", "root")
	if code != 0 {
		t.Fatalf("mail exited %d: %s", code, out)
	}
	dump := s.waitDump(t, 20*time.Second, "Subject: weekly report")
	for _, want := range []string{
		"X-Helo-Args: pve1.example.org\n",
		"X-Rcpt-Args: <boss@example.com>\n",
		"numbers of the week",
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("relayed message lacks %q:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, "X-Rcpt-Args: <root") {
		t.Errorf("the local recipient was relayed too:\n%s", dump)
	}
	if !strings.Contains(dump, "X-Mail-Args: <root@pve1.example.org>") && !strings.Contains(dump, "@pve1.example.org>") {
		t.Errorf("the envelope sender is not qualified with the mail name:\n%s", dump)
	}
	ev := d.waitEvent("weekly report")
	if to := ev.Fields["to"]; !strings.Contains(to, "boss@example.com") || !strings.Contains(to, "root") {
		t.Errorf("event field to = %q, want both envelope recipients", to)
	}
	if ev.Fields["from"] == "" || ev.Fields["hostname"] != "testhost" {
		t.Errorf("event fields %v: want from set and hostname the short name", ev.Fields)
	}
	mbox, err := os.ReadFile(filepath.Join(d.stateDir, "mail", "root"))
	if err != nil || !bytes.Contains(mbox, []byte("Subject: weekly report")) {
		t.Errorf("the local copy is not in root's mailbox: %v", err)
	}
	waitFor(t, "the relay delivery to be done", 10*time.Second, func() bool {
		out := d.run("", d.herald, "queue", "list", "--all")
		return strings.Contains(out, ".herald-relay") && strings.Contains(out, "done")
	})
	if n := len(s.dumps(t)); n != 1 {
		t.Errorf("smtp-sink received %d messages, want 1", n)
	}
}

// Without a relay, mail for a remote address is a notification, and herald
// says so at start-up and in herald status.
func TestMTANoRelayRemoteMailIsNotification(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	d.run("Subject: to nowhere\n\nbody\n", d.shim, "-i", "boss@example.com")
	ev := d.waitEvent("to nowhere")
	if ev.Fields["to"] != "boss@example.com" {
		t.Errorf("field to = %q", ev.Fields["to"])
	}
	// A blind copy is an envelope recipient the event does not reveal.
	d.run("To: root\nBcc: secret@example.org\nSubject: with a bcc\n\nbody\n", d.shim, "-i", "-t")
	if ev := d.waitEvent("with a bcc"); strings.Contains(fmt.Sprint(ev.Fields), "secret@example.org") || ev.Fields["to"] == "" {
		t.Errorf("the event of a mail with a Bcc: fields %v", ev.Fields)
	}
	if !strings.Contains(d.log(), "no relay set") {
		t.Errorf("the start-up log does not say that no relay is set:\n%s", d.log())
	}
	if out := d.run("", d.herald, "status"); !strings.Contains(out, "no relay set") {
		t.Errorf("herald status does not say that no relay is set:\n%s", out)
	}
	// The spool gauge is current: the mail left the spool, so it says 0.
	var status string
	waitFor(t, "herald status to show an empty spool", 5*time.Second, func() bool {
		status = d.run("", d.herald, "status")
		return strings.Contains(status, "0 entries, 0 bytes")
	})
	t.Log(status)
	if out := d.run("", d.herald, "queue", "list", "--all"); strings.Contains(out, "herald-relay") {
		t.Errorf("a relay delivery was queued without a relay:\n%s", out)
	}
}

// A relay that answers 4xx puts the delivery in back-off (30 s at least);
// once it is back, sendmail -q delivers at once, and mailq showed the
// pending delivery meanwhile.
func TestMTASendmailQFlushesBackedOffDelivery(t *testing.T) {
	s := startSink(t, 0, "-r", "rcpt")
	d := newRelayDaemon(t, s.port)
	d.start()
	d.run("Subject: deferred once\n\nx\n", d.shim, "-i", "later@example.com")
	waitFor(t, "a failed attempt", 20*time.Second, func() bool {
		for _, line := range strings.Split(d.run("", d.herald, "queue", "list"), "\n") {
			if f := strings.Fields(line); len(f) > 2 && strings.HasSuffix(f[0], ".herald-relay") && f[1] == "pending" && f[2] != "0" {
				return true
			}
		}
		return false
	})
	mq := d.run("", d.shim, "-bp")
	if strings.Contains(strings.ToLower(mq), "empty") || !strings.Contains(mq, "later@example.com") || !strings.Contains(mq, "1 Request") {
		t.Errorf("mailq with a pending delivery:\n%s", mq)
	}
	port := s.port
	s.stop(t)
	ok := startSink(t, port)
	start := time.Now()
	d.run("", d.shim, "-q")
	ok.waitDump(t, 8*time.Second, "Subject: deferred once", "X-Rcpt-Args: <later@example.com>")
	t.Logf("delivered %v after sendmail -q", time.Since(start).Round(time.Millisecond))
	waitFor(t, "mailq to be empty", 10*time.Second, func() bool {
		return strings.Contains(d.run("", d.shim, "-bp"), "Mail queue is empty")
	})
}

// mailq as an unprivileged user lists that user's submissions only; root
// sees everything; a closed pipe is no error.
func TestMTAMailqAsUnprivilegedUser(t *testing.T) {
	setpriv := needTool(t, "setpriv")
	if os.Geteuid() != 0 {
		t.Fatal("this test switches to the user nobody and must run as root (make test does)")
	}
	// A relay that never answers RCPT positively: everything stays pending.
	s := startSink(t, 0, "-r", "rcpt")
	d := newRelayDaemon(t, s.port)
	d.start()
	for _, p := range []string{bins.dir, filepath.Dir(d.configDir), filepath.Dir(filepath.Dir(d.configDir)), d.configDir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// As installed: others may traverse the state directory, not list it.
	if err := os.Chmod(d.stateDir, 0o711); err != nil {
		t.Fatal(err)
	}
	asNobody := func(stdin string, args ...string) (string, int) {
		return d.runCode(stdin, nil, setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...)
	}
	d.run("Subject: from root\n\nx\n", d.shim, "-i", "ops@example.com")
	// nobody cannot write this test's maildrop (no setgid shim here), so
	// the user's mail comes in as nobody through the spool's maildrop made
	// group-writable for the test, the way the setgid shim would write it.
	if err := os.Chmod(filepath.Join(d.stateDir, "spool"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(d.stateDir, "spool", "maildrop"), 0o1733); err != nil {
		t.Fatal(err)
	}
	if out, code := asNobody("Subject: from nobody\n\ny\n", d.shim, "-i", "friend@example.com"); code != 0 {
		t.Fatalf("shim as nobody: exit %d: %s", code, out)
	}
	waitFor(t, "both mails queued for the relay", 20*time.Second, func() bool {
		out := d.run("", d.herald, "queue", "list")
		return strings.Count(out, ".herald-relay") == 2
	})
	out, code := asNobody("", d.shim, "-bp")
	if code != 0 || !strings.Contains(out, "friend@example.com") || strings.Contains(out, "ops@example.com") || !strings.Contains(out, "1 Request") {
		t.Errorf("mailq as nobody: exit %d, want only nobody's mail:\n%s", code, out)
	}
	if out, code := asNobody("", d.herald, "queue", "list"); code != 77 || !strings.Contains(out, "mailq lists the mail you submitted") {
		t.Errorf("herald queue list as nobody: exit %d, want 77 and a pointer to mailq:\n%s", code, out)
	}
	out = d.run("", d.shim, "-bp")
	if !strings.Contains(out, "friend@example.com") || !strings.Contains(out, "ops@example.com") || !strings.Contains(out, "2 Requests") {
		t.Errorf("mailq as root, want both mails:\n%s", out)
	}
	// mailq | head -1: the pipe closes early; no complaint.
	cmd := exec.Command("sh", "-c", d.shim+" -bp | head -1")
	cmd.Env = d.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("mailq | head -1: %v, stderr %q", err, stderr.String())
	}
}

// Read-only commands run in some directory create nothing there, and the
// admin commands agree with the shim on the default state directory.
func TestMTAReadOnlyCommandsCreateNothing(t *testing.T) {
	herald, _ := buildBinaries(t)
	cwd := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	for _, args := range [][]string{{"queue", "list"}, {"queue", "list", "--all"}, {"status"}, {"check"}, {"queue", "show", "nope"}} {
		cmd := exec.Command(herald, args...)
		cmd.Dir, cmd.Env = cwd, env
		_ = cmd.Run() // exit status varies with the host; what matters is what it leaves
		if des, _ := os.ReadDir(cwd); len(des) > 0 {
			t.Errorf("herald %s created %v in the current directory", strings.Join(args, " "), des[0].Name())
		}
	}
}

// A relay that refuses a recipient for good: the delivery is a dead letter
// at once and herald emits delivery-failed naming the recipient; nobody
// gets a bounce.
func TestMTARelayRefusalIsDeliveryFailedNotBounce(t *testing.T) {
	s := startSink(t, 0, "-f", "rcpt")
	d := newRelayDaemon(t, s.port)
	d.start()
	d.run("Subject: doomed\n\nx\n", d.shim, "-i", "-f", "alice@pve1.example.org", "nobody@example.com")
	ev := d.waitEvent("herald on testhost: delivery to herald-relay failed")
	if ev.Fields["type"] != "delivery-failed" || ev.Fields["recipients"] != "nobody@example.com" || !strings.Contains(ev.Body, "Sender: alice@pve1.example.org") {
		t.Errorf("delivery-failed event: %+v", ev)
	}
	if ids := d.queueIDs("dead"); len(ids) != 1 || !strings.HasSuffix(ids[0], ".herald-relay") {
		t.Errorf("dead deliveries %v, want the relay's", ids)
	}
	// Once nothing but the dead letter waits, anything herald meant to
	// send has been sent.
	waitFor(t, "the queue to hold only the dead letter", 10*time.Second, func() bool {
		return strings.Contains(d.run("", d.herald, "queue", "list"), "-- 0 pending, 0 in flight, 1 dead")
	})
	if dumps := s.dumps(t); len(dumps) != 0 {
		t.Errorf("the relay received %d messages (a bounce?):\n%s", len(dumps), dumps[0])
	}
}

// With the built-in default-matcher alone, a mail relayed to all of its
// recipients is not copied to root (Postfix would not either); it is an
// event all the same, in the log.
func TestMTARelayedMailIsNotCopiedToRoot(t *testing.T) {
	s := startSink(t, 0)
	d := newDaemon(t, "# built-ins only\n")
	f, err := os.OpenFile(filepath.Join(d.configDir, "herald.cfg"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "relay 127.0.0.1:%d\nrelay-mode insecure\nmail-name pve1.example.org\n", s.port)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d.start()
	d.run("Subject: for boss only\n\nx\n", d.shim, "-i", "boss@example.com")
	s.waitDump(t, 20*time.Second, "Subject: for boss only", "X-Rcpt-Args: <boss@example.com>")
	d.run("Subject: for root\n\ny\n", d.shim, "-i", "root")
	mbox := filepath.Join(d.stateDir, "mail", "root")
	waitFor(t, "root's own mail in root's mailbox", 20*time.Second, func() bool {
		b, _ := os.ReadFile(mbox)
		return bytes.Contains(b, []byte("Subject: for root"))
	})
	if b, _ := os.ReadFile(mbox); bytes.Contains(b, []byte("for boss only")) {
		t.Errorf("the mail relayed to boss was copied to root:\n%s", b)
	}
	if !strings.Contains(d.log(), `title="for boss only"`) || !strings.Contains(d.log(), "targets=herald-relay") {
		t.Errorf("the relayed mail's event is not in the log:\n%s", d.log())
	}
}
