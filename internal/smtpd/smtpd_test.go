package smtpd

import (
	"context"
	"errors"
	"fmt"
	"herald/internal/spool"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// step is one exchange of a scripted dialogue: send (may be empty), then
// expect a reply with code and a last line starting with prefix. code 0
// means: expect the server to close the connection.
type step struct {
	send   string
	code   int
	prefix string
}

func runSteps(t *testing.T, c *client, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.send != "" {
			c.send(s.send)
		}
		if s.code == 0 {
			c.expectClosed()
			continue
		}
		got, lines, err := c.reply()
		if err != nil {
			t.Fatalf("step %d (%.50q): %v", i, s.send, err)
		}
		if got != s.code || !strings.HasPrefix(lines[len(lines)-1], s.prefix) {
			t.Fatalf("step %d (%.50q): got %d %q, want %d %q...", i, s.send, got, lines, s.code, s.prefix)
		}
	}
}

func TestDialogues(t *testing.T) {
	type want struct {
		from  string
		rcpts []string
		body  string
		helo  string
	}
	cases := []struct {
		name  string
		opt   Options
		steps []step
		want  []want
	}{{
		name: "ehlo transaction",
		steps: []step{
			{"EHLO client.test\r\n", 250, "LIMITS RCPTMAX=1000"},
			{"MAIL FROM:<a@example.org>\r\n", 250, "2.0.0"},
			{"RCPT TO:<root@localhost>\r\n", 250, "2.0.0"},
			{"RCPT TO:<ops@example.org>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"Subject: hi\r\n\r\nbody\r\n.\r\n", 250, "2.0.0 Ok: queued as ID0001"},
			{"QUIT\r\n", 221, "2.0.0"},
			{"", 0, ""},
		},
		want: []want{{"a@example.org", []string{"root@localhost", "ops@example.org"}, "Subject: hi\r\n\r\nbody\r\n", "client.test"}},
	}, {
		name: "helo and raw 8-bit data (bsmtp)",
		steps: []step{
			{"HELO vm\r\n", 250, "2.0.0 Hello vm"},
			{"MAIL FROM:<a@b>\r\n", 250, "2.0.0"},
			{"RCPT TO:<root@localhost>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"Subject: Sicherung fehlgeschlagen \xe2\x9c\x97\r\n\r\nGr\xc3\xbc\xc3\x9fe \xff\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
		},
		want: []want{{"a@b", []string{"root@localhost"}, "Subject: Sicherung fehlgeschlagen \xe2\x9c\x97\r\n\r\nGr\xc3\xbc\xc3\x9fe \xff\r\n", "vm"}},
	}, {
		name: "null sender, dot-stuffing, second transaction",
		steps: []step{
			{"EHLO c\r\n", 250, ""},
			{"MAIL FROM:<>\r\n", 250, "2.0.0"},
			{"RCPT TO:<root@localhost>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"..leading dot\r\n.\r\n", 250, "2.0.0 Ok: queued as ID0001"},
			{"MAIL FROM:<b@example.org>\r\n", 250, "2.0.0"},
			{"RCPT TO:<x@y>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"second\r\n.\r\n", 250, "2.0.0 Ok: queued as ID0002"},
		},
		want: []want{
			{"", []string{"root@localhost"}, ".leading dot\r\n", "c"},
			{"b@example.org", []string{"x@y"}, "second\r\n", "c"},
		},
	}, {
		name: "garbage commands get 500 and the session goes on",
		steps: []step{
			{"XYZZY\r\n", 501, "5.5.2 Bad command"},
			{"EHLO c\r\n", 250, ""},
			{"FOOO BAR BAZ\r\n", 500, "5.5.2 Syntax errors, FOOO command unrecognized"},
			{"\x01\x02\x03\x04 \x05\r\n", 500, "5.5.2"},
			{"NOOP\r\n", 250, "2.0.0"},
			{"MAIL FROM:<a@b>\r\n", 250, "2.0.0"},
			{"RCPT TO:<c@d>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"ok\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
		},
		want: []want{{"a@b", []string{"c@d"}, "ok\r\n", "c"}},
	}, {
		name: "fourth syntax error ends the session",
		steps: []step{
			{"ABCDE\r\n", 501, "5.5.2"},
			{"XYZZY\r\n", 501, "5.5.2"},
			{"ab\r\n", 501, "5.5.2"},
			{"QQQQ\r\n", 500, "5.5.2"},
			{"", 500, "5.5.1 Too many errors"},
			{"", 0, ""},
		},
	}, {
		name: "commands before HELO",
		steps: []step{
			{"MAIL FROM:<a@b>\r\n", 502, "5.5.1"},
			{"RCPT TO:<c@d>\r\n", 502, "5.5.1"},
			{"DATA\r\n", 502, "5.5.1"},
			{"RSET\r\n", 250, "2.0.0"},
			{"HELO c\r\n", 250, "2.0.0"},
			{"DATA\r\n", 502, "5.5.1"},
			{"MAIL FROM:<a@b>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 502, "5.5.1"},
			{"RCPT TO:<c@d>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"x\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
		},
		want: []want{{"a@b", []string{"c@d"}, "x\r\n", "c"}},
	}, {
		name: "bare LF in commands and data; only CRLF.CRLF ends the data",
		steps: []step{
			{"EHLO c\n", 250, ""},
			{"MAIL FROM:<a@b>\n", 250, "2.0.0"},
			{"RCPT TO:<c@d>\n", 250, "2.0.0"},
			{"DATA\n", 354, ""},
			{"line one\nline two\n.\nstill data\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
			{"QUIT\n", 221, ""},
		},
		want: []want{{"a@b", []string{"c@d"}, "line one\nline two\n.\nstill data\r\n", "c"}},
	}, {
		name: "NUL bytes",
		steps: []step{
			{"EH\x00LO c\r\n", 501, "5.5.2"},
			{"HELO c\x00d\r\n", 250, "2.0.0"},
			{"MAIL FROM:<a@b>\r\n", 250, "2.0.0"},
			{"RCPT TO:<c@d>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"a\x00b\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
		},
		want: []want{{"a@b", []string{"c@d"}, "a\x00b\r\n", "c\x00d"}},
	}, {
		name: "SIZE over the limit is refused at MAIL",
		opt:  Options{MaxMessageSize: 1000},
		steps: []step{
			{"EHLO c\r\n", 250, "LIMITS"},
			{"MAIL FROM:<a@b> SIZE=1001\r\n", 552, "5.3.4"},
			{"MAIL FROM:<a@b> SIZE=1000 BODY=8BITMIME\r\n", 250, "2.0.0"},
		},
	}, {
		name: "too many recipients",
		opt:  Options{MaxRecipients: 2},
		steps: []step{
			{"EHLO c\r\n", 250, ""},
			{"MAIL FROM:<a@b>\r\n", 250, "2.0.0"},
			{"RCPT TO:<r1@x>\r\n", 250, "2.0.0"},
			{"RCPT TO:<r2@x>\r\n", 250, "2.0.0"},
			{"RCPT TO:<r3@x>\r\n", 452, "4.5.3"},
			{"DATA\r\n", 354, ""},
			{"x\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
		},
		want: []want{{"a@b", []string{"r1@x", "r2@x"}, "x\r\n", "c"}},
	}, {
		name: "nested MAIL and RSET",
		steps: []step{
			{"EHLO c\r\n", 250, ""},
			{"MAIL FROM:<a@b>\r\n", 250, "2.0.0"},
			{"RCPT TO:<r1@x>\r\n", 250, "2.0.0"},
			{"MAIL FROM:<other@b>\r\n", 503, "5.5.1"},
			{"RSET\r\n", 250, "2.0.0"},
			{"MAIL FROM:<other@b>\r\n", 250, "2.0.0"},
			{"RCPT TO:<r2@x>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"x\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
		},
		want: []want{{"other@b", []string{"r2@x"}, "x\r\n", "c"}},
	}, {
		name: "no AUTH, no STARTTLS, unknown parameters",
		steps: []step{
			{"EHLO c\r\n", 250, ""},
			{"AUTH PLAIN AGZvbwBiYXI=\r\n", 523, "5.7.10"},
			{"STARTTLS\r\n", 502, "5.5.1"},
			{"VRFY root\r\n", 252, "2.5.0"},
			{"HELP\r\n", 502, "5.5.1"},
			{"MAIL FROM:<a@b> FOO=BAR\r\n", 500, "5.5.4"},
			{"MAIL FROM:a@b\r\n", 250, "2.0.0"},
			{"RCPT TO:<a b@c>\r\n", 501, "5.5.2"},
			{"RCPT TO:<\"quoted\">\r\n", 501, "5.5.2"},
		},
	}, {
		name: "BDAT chunks are message data, not commands",
		steps: []step{
			{"EHLO c\r\n", 250, ""},
			{"MAIL FROM:<a@b>\r\n", 250, "2.0.0"},
			{"RCPT TO:<c@d>\r\n", 250, "2.0.0"},
			{"BDAT 16\r\nRCPT TO:<root>\r\n", 250, "2.0.0 Continue"},
			{"BDAT 5000\r\n" + strings.Repeat("L", 5000), 250, "2.0.0 Continue"},
			{"bdat 7 last\r\n\r\n.\r\nx\n", 250, "2.0.0 Ok: queued as"},
			{"BDAT 3\r\nabc", 502, "5.5.1 Missing RCPT TO"},
			{"NOOP\r\n", 250, "2.0.0"},
		},
		want: []want{{"a@b", []string{"c@d"}, "RCPT TO:<root>\r\n" + strings.Repeat("L", 5000) + "\r\n.\r\nx\n", "c"}},
	}, {
		name: "addresses without a domain are qualified (bsmtp -f bacula root)",
		steps: []step{
			{"HELO vm\r\n", 250, ""},
			{"MAIL FROM:<bacula>\r\n", 250, "2.0.0 Roger, accepting mail from <bacula@herald.test>"},
			{"RCPT TO:<root>\r\n", 250, "2.0.0"},
			{"rcpt to:  <Postmaster> NOTIFY=NEVER\r\n", 504, "5.5.4"},
			{"rcpt to:  <Postmaster>\r\n", 250, "2.0.0"},
			{"RCPT TO:ops\r\n", 250, "2.0.0"},
			{"RCPT TO:<a@b>\r\n", 250, "2.0.0"},
			{"DATA\r\n", 354, ""},
			{"RCPT TO:<root>\r\n.\r\n", 250, "2.0.0 Ok: queued as"},
			{"MAIL FROM:<>\r\n", 250, "2.0.0 Roger, accepting mail from <>"},
		},
		want: []want{{"bacula@herald.test", []string{"root@herald.test", "Postmaster@herald.test", "ops@herald.test", "a@b"}, "RCPT TO:<root>\r\n", "vm"}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			ts := start(t, sub, tc.opt, "127.0.0.1:0")
			c := dial(t, ts.addr)
			c.expect(220, "herald.test ESMTP")
			runSteps(t, c, tc.steps)
			if err := c.c.Close(); err != nil {
				t.Fatal(err)
			}
			got := sub.submissions()
			if len(got) != len(tc.want) {
				t.Fatalf("submitted %d messages, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.env.From != w.from || !slices.Equal(g.env.Recipients, w.rcpts) || string(g.body) != w.body || g.env.Helo != w.helo {
					t.Errorf("message %d: from %q rcpts %q helo %q body %q; want from %q rcpts %q helo %q body %q",
						i, g.env.From, g.env.Recipients, g.env.Helo, g.body, w.from, w.rcpts, w.helo, w.body)
				}
				if g.env.Kind != spool.KindMail || g.env.Source != "smtp" || !strings.HasPrefix(g.env.Remote, "127.0.0.1:") || g.env.Received.IsZero() {
					t.Errorf("message %d: envelope %+v", i, g.env)
				}
			}
		})
	}
}

func TestEHLOAdvertises(t *testing.T) {
	ts := start(t, &fakeSub{}, Options{MaxMessageSize: 12345, MaxRecipients: 7}, "127.0.0.1:0")
	c := dial(t, ts.addr)
	c.expect(220, "herald.test ESMTP")
	c.send("EHLO c\r\n")
	lines := c.expect(250, "")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "SIZE 12345", "LIMITS RCPTMAX=7"} {
		if !slices.Contains(lines, ext) {
			t.Errorf("EHLO reply %q lacks %s", lines, ext)
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "AUTH") || strings.HasPrefix(l, "STARTTLS") {
			t.Errorf("EHLO reply offers %s", l)
		}
	}
}

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

func TestSubmitFailure(t *testing.T) {
	cases := []struct {
		name string
		err  error
	}{
		{"temporary (disk full)", &os.PathError{Op: "write", Path: "/var/lib/herald/spool/incoming/x", Err: syscall.ENOSPC}},
		{"other error", errors.New("secret internal detail")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{fail: []error{tc.err}}
			var accepted []string
			ts := start(t, sub, Options{OnAccepted: func(id string) { accepted = append(accepted, id) }}, "127.0.0.1:0")
			c := greet(t, ts.addr)
			c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
			c.expect(250, "2.0.0")
			c.expect(250, "2.0.0")
			c.expect(354, "")
			c.send("first try\r\n.\r\n")
			lines := c.expect(451, "4.3.0 Requested action aborted: local problem in processing")
			if strings.Contains(strings.Join(lines, " "), tc.err.Error()) {
				t.Errorf("reply %q reveals the error", lines)
			}
			if !strings.Contains(ts.log.String(), tc.err.Error()) {
				t.Errorf("log lacks the error detail:\n%s", ts.log)
			}
			if len(sub.submissions()) != 0 || len(accepted) != 0 {
				t.Fatalf("failed message counted as submitted")
			}
			// Same session, second try.
			id := c.mail("a@b", []string{"c@d"}, "second try\r\n")
			if got := sub.only(t); got.id != id || string(got.body) != "second try\r\n" {
				t.Fatalf("retry: got %+v", got)
			}
			c.send("QUIT\r\n")
			c.expect(221, "")
			if !slices.Equal(accepted, []string{id}) {
				t.Errorf("OnAccepted got %q, want [%s]", accepted, id)
			}
			if !strings.Contains(ts.log.String(), "mail accepted") || !strings.Contains(ts.log.String(), "id="+id) {
				t.Errorf("no accept log line for %s:\n%s", id, ts.log)
			}
		})
	}
}

// recordingListener records every Write on the connections it accepts.
type recordingListener struct {
	net.Listener
	writes chan string
}

type recordingConn struct {
	net.Conn
	writes chan string
}

func (c *recordingConn) Write(p []byte) (int, error) {
	select {
	case c.writes <- string(p):
	default:
	}
	return c.Conn.Write(p)
}

func TestPipelining(t *testing.T) {
	sub := &fakeSub{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: l, writes: make(chan string, 100)}
	ts := serveOn(t, sub, Options{MaxRecipients: 2}, rl)
	c := dial(t, ts.addr)
	c.expect(220, "herald.test")
	c.send("EHLO c\r\n")
	c.expect(250, "")
	drain := func() []string {
		var w []string
		for {
			select {
			case s := <-rl.writes:
				w = append(w, s)
			default:
				return w
			}
		}
	}
	drain()

	// One write: MAIL, three RCPTs (one over the limit), a bad command, DATA.
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<r1@x>\r\nRCPT TO:<r2@x>\r\nRCPT TO:<r3@x>\r\nBOGU\r\nDATA\r\n")
	for _, w := range []struct {
		code   int
		prefix string
	}{{250, "2.0.0"}, {250, "2.0.0"}, {250, "2.0.0"}, {452, "4.5.3"}, {500, "5.5.2"}, {354, ""}} {
		c.expect(w.code, w.prefix)
	}
	// The six replies left the server in one write.
	if w := drain(); len(w) != 1 || strings.Count(w[0], "\r\n") != 6 {
		t.Errorf("pipelined replies were written as %d writes: %q", len(w), w)
	}
	c.send("Subject: p\r\n\r\npipelined\r\n.\r\nQUIT\r\n")
	c.expect(250, "2.0.0 Ok: queued as")
	c.expect(221, "")
	c.expectClosed()
	got := sub.only(t)
	if !slices.Equal(got.env.Recipients, []string{"r1@x", "r2@x"}) || string(got.body) != "Subject: p\r\n\r\npipelined\r\n" {
		t.Fatalf("got %+v", got)
	}
}

func TestStalledClients(t *testing.T) {
	sub := &fakeSub{}
	const timeout = time.Second
	ts := start(t, sub, Options{ReadTimeout: timeout}, "127.0.0.1:0")

	// idle connects and says nothing; mid stops in the middle of its message.
	idle := dial(t, ts.addr)
	idle.expect(220, "herald.test")
	mid := greet(t, ts.addr)
	mid.send("MAIL FROM:<stall@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	mid.expect(250, "")
	mid.expect(250, "")
	mid.expect(354, "")
	mid.send("Subject: half\r\n\r\nhalf a mess")
	stalled := time.Now()

	// Meanwhile another client gets its mail through.
	other := greet(t, ts.addr)
	id := other.mail("ok@b", []string{"c@d"}, "fine\r\n")
	if since := time.Since(stalled); since >= timeout {
		t.Fatalf("the healthy session took %v, not shorter than the timeout; cannot tell it ran meanwhile", since)
	}

	idle.expect(421, "4.4.2")
	idle.expectClosed()
	mid.expect(451, "4.3.0") // answer to the cut-off DATA
	mid.expect(421, "4.4.2")
	mid.expectClosed()
	if since := time.Since(stalled); since < timeout {
		t.Errorf("stalled sessions closed after %v, before the %v timeout", since, timeout)
	}
	if got := sub.only(t); got.id != id || got.env.From != "ok@b" {
		t.Fatalf("got %+v", got)
	}
	// A client that is slow but never silent for a whole timeout is fine:
	// the limit is on silence, not on the length of DATA.
	slow := greet(t, ts.addr)
	slow.send("MAIL FROM:<slow@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	slow.expect(250, "")
	slow.expect(250, "")
	slow.expect(354, "")
	tick := time.NewTicker(timeout / 4)
	defer tick.Stop()
	for i := 0; i < 6; i++ {
		<-tick.C
		slow.send("line\r\n")
	}
	slow.send(".\r\n")
	slow.expect(250, "2.0.0 Ok: queued as")
}

func TestShutdownLetsDataFinish(t *testing.T) {
	started := make(chan struct{}, 1)
	sub := &fakeSub{started: started}
	ts := start(t, sub, Options{}, "127.0.0.1:0")

	idle := greet(t, ts.addr)
	busy := greet(t, ts.addr)
	busy.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	busy.expect(250, "")
	busy.expect(250, "")
	busy.expect(354, "")
	busy.send("Subject: in flight\r\n\r\nfirst half\r\n")
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("Submit not called")
	}
	// A session with MAIL given but no DATA yet also counts as in flight.
	tx := greet(t, ts.addr)
	tx.send("MAIL FROM:<tx@b>\r\n")
	tx.expect(250, "")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()

	idle.expect(421, "4.3.2")
	idle.expectClosed()
	// No new connections.
	waitFor(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", ts.addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a message was in flight", err)
	default:
	}

	busy.send("second half\r\n.\r\n")
	busy.expect(250, "2.0.0 Ok: queued as")
	busy.expect(421, "4.3.2") // between transactions now: told to go
	busy.expectClosed()

	tx.send("RCPT TO:<c@d>\r\nDATA\r\n")
	tx.expect(250, "")
	tx.expect(354, "")
	<-started
	tx.send("late\r\n.\r\n")
	tx.expect(250, "2.0.0 Ok: queued as")
	tx.expect(421, "4.3.2")

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Shutdown did not return after the sessions ended")
	}
	select {
	case err := <-ts.served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.served <- nil // for the cleanup
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	if got := sub.submissions(); len(got) != 2 || string(got[0].body) != "Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n" {
		t.Fatalf("got %+v", got)
	}
}

func TestShutdownDeadline(t *testing.T) {
	started := make(chan struct{}, 1)
	sub := &fakeSub{started: started}
	ts := start(t, sub, Options{}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	c.send("never finished\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	// The connection is cut; the message was never acknowledged.
	if err := c.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed after Shutdown deadline")
	}
	if strings.Contains(string(rest), "250") {
		t.Fatalf("got %q after the shutdown deadline", rest)
	}
	if n := len(sub.submissions()); n != 0 {
		t.Fatalf("%d messages submitted", n)
	}
	if err := <-ts.served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	ts.served <- nil
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

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, writes: l.writes}, nil
}
