package smtpd

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/spool"
)

// dialFrom connects to addr from the loopback address local, so that a test
// can be several clients.
func dialFrom(t *testing.T, local, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// The session caps answer 421 at connection time and free a slot when a
// session ends. On loopback a client is a local user, whatever 127.x
// address it comes from: another user still gets in while one user is at
// its cap.
func TestSessionCaps(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{MaxSessions: 4, MaxSessionsPerClient: 2}, "127.0.0.1:0")

	a1 := dialFrom(t, "127.0.0.1", ts.addr)
	a1.expect(220, "herald.test ESMTP")
	a2 := dialFrom(t, "127.0.0.2", ts.addr)
	a2.expect(220, "herald.test ESMTP")
	a3 := dialFrom(t, "127.0.0.3", ts.addr)
	a3.expect(421, "4.7.0 Error: too many connections")
	a3.expectClosed()

	if os.Geteuid() != 0 {
		t.Fatal("this test starts a client as nobody and must run as root (make test does)")
	}
	if line := greetingAs(t, 65534, ts.addr); !strings.HasPrefix(line, "220 herald.test") {
		t.Fatalf("another user at its first session got %q", line)
	}

	// A slot comes back when a session ends.
	a1.send("QUIT\r\n")
	a1.expect(221, "")
	waitFor(t, "the session count to drop", func() bool { return ts.lim.active() == 2 })
	c2 := dialFrom(t, "127.0.0.3", ts.addr)
	c2.expect(220, "herald.test ESMTP")
	c2.send("EHLO c\r\n")
	c2.expect(250, "")
	c2.mail("a@b.test", []string{"root@b.test"}, "Subject: x\r\n\r\nx\r\n")
	if got := sub.submissions(); len(got) != 1 || got[0].env.PeerUID == nil || *got[0].env.PeerUID != os.Geteuid() {
		t.Errorf("the envelope does not carry the client's uid: %+v", got)
	}
	if !strings.Contains(ts.log.String(), "smtp connections refused") {
		t.Errorf("no log line about the refusals:\n%s", ts.log.String())
	}
}

// greetingAs connects to addr as uid (bash's /dev/tcp) and returns the
// first line the server sends; the connection stays open until the test
// ends.
func greetingAs(t *testing.T, uid uint32, addr string) string {
	t.Helper()
	sh, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found: apt-get install bash")
	}
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(sh, "-c", "exec 3<>/dev/tcp/"+host+"/"+port+"; head -n1 <&3; read -r _")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		return l
	case <-time.After(wait):
		t.Fatal("no greeting for the other user")
		return ""
	}
}

// Peers that are not local users are counted by address.
func TestSessionCapsByAddress(t *testing.T) {
	l := newLimiter(Options{MaxSessions: 10, MaxSessionsPerClient: 2})
	local := &net.TCPAddr{IP: net.ParseIP("192.0.2.100"), Port: 25}
	at := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }
	for i, tc := range []struct {
		ip string
		ok bool
	}{{"192.0.2.1", true}, {"192.0.2.1", true}, {"192.0.2.1", false}, {"::ffff:192.0.2.1", false}, {"192.0.2.2", true}} {
		if ok, why := l.admit(&conn{}, local, at(tc.ip)); ok != tc.ok {
			t.Errorf("connection %d from %s: admitted %v (%s), want %v", i, tc.ip, ok, why, tc.ok)
		}
	}
}

// A client that trickles message data a byte at a time never runs into the
// per-read timeout, but the session time limit cuts it off, and nothing it
// sent is submitted.
func TestSessionTimeCutsSlowClient(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{ReadTimeout: 5 * time.Second, SessionTime: 1500 * time.Millisecond}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.send("MAIL FROM:<a@b.test>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<root@b.test>\r\n")
	c.expect(250, "")
	c.send("DATA\r\n")
	c.expect(354, "")
	began := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for i := 0; time.Since(began) < wait; i++ {
			if _, err := c.c.Write([]byte{'x'}); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	// Inside DATA the cut-off reads as a failed message (451); go-smtp
	// ends the session after it.
	if code, lines, err := c.reply(); err == nil && code/100 != 4 {
		t.Fatalf("got %d %q, want a 4xx or the connection closed", code, lines)
	}
	if d := time.Since(began); d > 4*time.Second {
		t.Errorf("cut off after %v, want about 1.5s", d)
	}
	c.expect(421, "4.4.2")
	c.expectClosed()
	<-closed
	if n := len(sub.submissions()); n != 0 {
		t.Errorf("%d messages submitted", n)
	}
	waitFor(t, "the session time log line", func() bool {
		return strings.Contains(ts.log.String(), "session time limit reached")
	})
}

// A session that starts more mails than its rate allows gets 421 and is
// closed; commands pipelined after the refused MAIL are not executed.
func TestMailRatePerSession(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{MailsPerMinute: 2}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	for range 2 {
		c.mail("a@b.test", []string{"root@b.test"}, "Subject: x\r\n\r\nx\r\n")
	}
	c.send("MAIL FROM:<a@b.test>\r\nRCPT TO:<root@b.test>\r\nDATA\r\nSubject: over\r\n\r\nx\r\n.\r\n")
	c.expect(421, "4.7.0 Error: too many messages")
	c.expectClosed()
	if n := len(sub.submissions()); n != 2 {
		t.Errorf("%d messages submitted, want 2", n)
	}
	// A new connection has its own budget.
	d := greet(t, ts.addr)
	d.mail("a@b.test", []string{"root@b.test"}, "Subject: x\r\n\r\nx\r\n")
}

func TestMailTokensRefill(t *testing.T) {
	l := newLimiter(Options{MailsPerMinute: 60})
	c := &conn{}
	if ok, why := l.admit(c, &net.TCPAddr{IP: net.ParseIP("192.0.2.100")}, &net.TCPAddr{IP: net.ParseIP("192.0.2.1")}); !ok {
		t.Fatal(why)
	}
	for i := range 60 {
		if !l.takeMail(c) {
			t.Fatalf("mail %d refused within the burst", i)
		}
	}
	if l.takeMail(c) {
		t.Fatal("mail 61 allowed at once")
	}
	l.sessions[c].last = l.sessions[c].last.Add(-2 * time.Second) // two seconds pass: two tokens
	for i := range 2 {
		if !l.takeMail(c) {
			t.Fatalf("refilled mail %d refused", i)
		}
	}
	if l.takeMail(c) {
		t.Fatal("a third mail allowed after two seconds")
	}
}

// Below the spool's free-space reserve MAIL is answered 452 4.3.1 (the
// client keeps the mail and retries), and a DATA whose Submit meets the
// reserve gets 452 too, not 451; with space again the same session works.
func TestReserveAnswers452(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sp.SetLimits(spool.Limits{MinFree: 1 << 62})
	ts := start(t, sp, Options{}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.send("MAIL FROM:<a@b.test>\r\n")
	c.expect(452, "4.3.1 Insufficient system storage")
	sp.SetLimits(spool.Limits{MinFree: 1 << 20})
	c.send("MAIL FROM:<a@b.test>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<root@b.test>\r\n")
	c.expect(250, "")
	sp.SetLimits(spool.Limits{MinFree: 1 << 62}) // the disk fills meanwhile
	c.send("DATA\r\n")
	c.expect(354, "")
	c.send("Subject: x\r\n\r\nx\r\n.\r\n")
	c.expect(452, "4.3.1")
	sp.SetLimits(spool.Limits{MinFree: 1 << 20})
	c.mail("a@b.test", []string{"root@b.test"}, "Subject: x\r\n\r\nx\r\n")
}

// Bcc is removed in every path: over SMTP as over sendmail -bs, however the
// field is folded; the rest of the message is kept as sent.
func TestBccRemovedOverSMTP(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.mail("a@b.test", []string{"root@b.test", "hidden@b.test"},
		"To: root@b.test\r\nBcc: hidden@b.test,\r\n other@b.test\r\nSubject: x\r\n\r\nBcc: body text\r\n")
	got := sub.only(t)
	if want := "To: root@b.test\r\nSubject: x\r\n\r\nBcc: body text\r\n"; string(got.body) != want {
		t.Fatalf("stored %q, want %q", got.body, want)
	}
}
