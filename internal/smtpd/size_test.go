package smtpd

// Tests of what one message may be: line length, size, header block, and how many errors a session may make.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLongLines(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{}, "127.0.0.1:0")

	// Command lines under the limit but over RFC 5321's 512 are fine, and a
	// long syntax error is just a syntax error.
	c := greet(t, ts.addr)
	c.send("NOOP " + strings.Repeat("x", 4000) + "\r\n")
	c.expect(250, "2.0.0")
	c.send("XXXX" + strings.Repeat("y", 4000) + "\r\n")
	c.expect(501, "5.5.2")

	// A message line far longer than the command limit goes through intact.
	long := strings.Repeat("z", 200<<10)
	id := c.mail("a@b", []string{"c@d"}, "Subject: long\r\n\r\n"+long+"\r\n")
	if got := sub.only(t); got.id != id || string(got.body) != "Subject: long\r\n\r\n"+long+"\r\n" {
		t.Fatalf("long message line not kept: id %s body %d bytes", got.id, len(got.body))
	}

	// A 100 KB command line ends the connection with 500 5.4.0.
	c.send("MAIL FROM:<" + strings.Repeat("a", 100<<10) + "@b>\r\n")
	c.expect(500, "5.4.0")
	c.expectClosed()

	// Other sessions are unaffected.
	c2 := greet(t, ts.addr)
	c2.mail("a@b", []string{"c@d"}, "again\r\n")
}

func TestOversizeData(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{MaxMessageSize: 10000}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect(250, "2.0.0")
	c.expect(250, "2.0.0")
	c.expect(354, "")
	line := strings.Repeat("o", 98) + "\r\n"
	c.send(strings.Repeat(line, 200) + ".\r\n") // 20000 bytes
	c.expect(552, "5.3.4")
	if got := sub.submissions(); len(got) != 0 {
		t.Fatalf("oversize message submitted: %d", len(got))
	}
	if !strings.Contains(ts.log.String(), "too large") {
		t.Errorf("no log line for the oversize message:\n%s", ts.log)
	}
	// The session goes on, and a message just under the limit passes.
	body := strings.Repeat(line, 99)
	c.mail("a@b", []string{"c@d"}, body)
	if got := sub.only(t); string(got.body) != body {
		t.Fatalf("body mismatch after oversize message")
	}
}

func TestSizeBoundary(t *testing.T) {
	// go-smtp's reader fails once MaxMessageSize bytes are used up, so the
	// largest message accepted is one byte short of the limit.
	const limit = 1000
	sub := &fakeSub{}
	ts := start(t, sub, Options{MaxMessageSize: limit}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	body := func(n int) string { return strings.Repeat("b", n-2) + "\r\n" }
	c.mail("a@b", []string{"c@d"}, body(limit-1))
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	c.send(body(limit) + ".\r\n")
	c.expect(552, "5.3.4")
	if got := sub.only(t); len(got.body) != limit-1 {
		t.Fatalf("accepted %d bytes", len(got.body))
	}
}

func TestBareLFEndOfData(t *testing.T) {
	// LF "." LF does not end a message; the client waits for a reply that
	// cannot come, and the idle timeout ends the session without a message.
	sub := &fakeSub{}
	ts := start(t, sub, Options{ReadTimeout: 300 * time.Millisecond}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.send("MAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	c.send("Subject: lf\n\nbody\n.\n")
	c.expect(451, "4.3.0")
	c.expect(421, "4.4.2")
	c.expectClosed()
	if n := len(sub.submissions()); n != 0 {
		t.Fatalf("%d messages submitted", n)
	}
}

// TestTooManyErrorsEndsSession is the cross-protocol injection case: junk
// (a browser form posted to the port, say) followed by a whole transaction
// in one write. go-smtp answers "500 Too many errors" and closes; nothing
// after that may be read or executed, so no mail is accepted.
func TestTooManyErrorsEndsSession(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{}, "127.0.0.1:0")
	c := dial(t, ts.addr)
	c.expect(220, "")
	var junk strings.Builder
	for i := range 12 {
		fmt.Fprintf(&junk, "J%d: y\r\n", i)
	}
	c.send(junk.String() + "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root@localhost>\r\nDATA\r\n" +
		"Subject: xproto injected\r\n\r\nx\r\n.\r\nQUIT\r\n")
	var codes []int
	for {
		code, _, err := c.reply()
		if err != nil {
			break
		}
		codes = append(codes, code)
	}
	if slices.Contains(codes, 354) || slices.Contains(codes, 250) {
		t.Errorf("session went on after too many errors: replies %v", codes)
	}
	if len(codes) == 0 || codes[len(codes)-1] != 500 {
		t.Errorf("last reply %v, want 500 Too many errors", codes)
	}
	if got := sub.submissions(); len(got) != 0 {
		t.Fatalf("a mail was accepted after the error limit: %+v", got)
	}
}

// TestHeaderLimits: a header bomb is refused with 552 5.3.4 before it is
// spooled, by size and by field count; the session goes on, and a message
// whose header is just inside the limits, or that has no header at all,
// passes whatever its body size.
func TestHeaderLimits(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{MaxHeaderSize: 4096, MaxHeaderFields: 50}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	send := func(msg string) {
		t.Helper()
		c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
		c.expect(250, "2.0.0")
		c.expect(250, "2.0.0")
		c.expect(354, "")
		c.send(msg + ".\r\n")
	}
	send(strings.Repeat("X: v\r\n", 51) + "\r\nbody\r\n") // 51 fields
	c.expect(552, "5.3.4")
	send("Subject: " + strings.Repeat("x", 5000) + "\r\n\r\nbody\r\n") // 5 KB header
	c.expect(552, "5.3.4")
	send(strings.Repeat("X: v\r\n", 1400) + "Subject: bomb\r\n\r\nb\r\n") // both
	c.expect(552, "5.3.4")
	if got := sub.submissions(); len(got) != 0 {
		t.Fatalf("a header bomb was submitted: %d", len(got))
	}
	if !strings.Contains(ts.log.String(), "header too large") {
		t.Errorf("no log line for the refused header:\n%s", ts.log)
	}
	// Continuation lines belong to their field: 50 fields, each folded.
	ok := strings.Repeat("X: v\r\n continued\r\n", 50) + "\r\n" + strings.Repeat("body line\r\n", 2000)
	c.mail("a@b", []string{"c@d"}, ok)
	// No header at all: the body may be large.
	noHeader := strings.Repeat("just text, no header\r\n", 1000)
	c.mail("a@b", []string{"c@d"}, noHeader)
	if got := sub.submissions(); len(got) != 2 || string(got[0].body) != ok || string(got[1].body) != noHeader {
		t.Fatalf("messages inside the limits were not submitted intact: %d", len(got))
	}
}

func TestHeaderLimitScan(t *testing.T) {
	cases := []struct {
		name   string
		chunks []string
		fields int
		bytes  int64
		done   bool
	}{
		{"crlf", []string{"A: 1\r\nB: 2\r\n\r\nbody"}, 2, 14, true},
		{"lf", []string{"A: 1\nB: 2\n\nbody"}, 2, 11, true},
		{"split cr lf", []string{"A: 1\r\n\r", "\nbody"}, 1, 8, true},
		{"continuation", []string{"A: 1\r\n\tmore\r\n\r\n"}, 1, 15, true},
		{"mbox from line", []string{"From a@b Mon\r\nA: 1\r\n"}, 1, 4, true},
		{"no blank line yet", []string{"A: 1\r\nB:", " 2\r\n"}, 2, 12, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := headerLimit{maxBytes: 1 << 20, maxFields: 100}
			for _, c := range tc.chunks {
				if h.done {
					break
				}
				if !h.scan([]byte(c)) {
					t.Fatal("limit exceeded")
				}
			}
			if h.fields != tc.fields || h.bytes != tc.bytes || h.done != tc.done {
				t.Errorf("fields %d bytes %d done %v, want %d %d %v", h.fields, h.bytes, h.done, tc.fields, tc.bytes, tc.done)
			}
		})
	}
}
