package smtpd

import (
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"herald/internal/spool"
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

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, writes: l.writes}, nil
}
