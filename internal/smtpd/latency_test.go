package smtpd

import (
	"bufio"
	"net"
	"slices"
	"testing"
	"time"
)

// smallWritesMail sends one message the way msmtp does: Nagle on (msmtp
// does not set TCP_NODELAY) and every line its own write. It returns how
// long the message took from MAIL FROM to the 250 for the final dot.
func smallWritesMail(t *testing.T, addr string) time.Duration {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.(*net.TCPConn).SetNoDelay(false); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, c: nc, r: bufio.NewReader(nc)}
	c.expect(220, "")
	c.send("EHLO c\r\n")
	c.expect(250, "")
	begin := time.Now()
	c.send("MAIL FROM:<a@b>\r\n")
	c.send("RCPT TO:<c@d>\r\n")
	c.send("DATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	for _, l := range []string{"Date: Sat, 21 Nov 2026 12:19:12 +0000\r\n", "Message-ID: <1@c>\r\n", "From: a@b\r\n", "To: c@d\r\n", "Subject: cron\r\n", "\r\n"} {
		c.send(l)
	}
	for i := 0; i < 8; i++ {
		c.send("output line of a cron job\r\n")
	}
	c.send(".\r\n")
	c.expect(250, "2.0.0 Ok: queued as")
	took := time.Since(begin)
	c.send("QUIT\r\n")
	c.expect(221, "")
	return took
}

// TestNoDelayedACKStall proves the listener ACKs at once: against a server
// that leaves TCP_QUICKACK off, a client writing small segments with Nagle
// on waits for Linux's 40 ms delayed ACK (docs/clients.md §2).
func TestNoDelayedACKStall(t *testing.T) {
	ts := start(t, &fakeSub{}, Options{}, "127.0.0.1:0")
	var took []time.Duration
	for i := 0; i < 7; i++ {
		took = append(took, smallWritesMail(t, ts.addr))
	}
	slices.Sort(took)
	t.Logf("small-write messages took %v", took)
	if med := took[len(took)/2]; med >= 30*time.Millisecond {
		t.Fatalf("median %v: the 40 ms delayed-ACK stall is back (%v)", med, took)
	}
}
