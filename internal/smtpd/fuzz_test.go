package smtpd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"herald/internal/testkit"
)

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzSession feeds arbitrary bytes as a client's whole input to a session.
// The server must end the session (no hang, no panic), write only
// well-formed reply lines, and acknowledge exactly the messages it
// submitted.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"HELO vm\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root@localhost>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<> SIZE=10\r\nRCPT TO:<root>\r\nRCPT TO:<x@y>\r\nDATA\r\n..x\r\n.\r\nRSET\r\nQUIT\r\n",
		"EHLO c\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\nbare\nlf\n.\n\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5\r\nhelloBDAT 0 LAST\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 3 LAST\r\nab",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nunterminated",
		"GARBAGE\r\nXXXX\r\n\x00\x01\x02\r\nEHLO \xff\r\nAUTH PLAIN AAAA\r\nSTARTTLS\r\n",
		"EHLO c\r\nMAIL FROM:<jörg@exämple.org> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<ö@ü>\r\nDATA\r\nSubject: ✓\r\n\r\n\xff\xfe\r\n.\r\n",
		"HELO a\rb\r\nMAIL FROM:<a@b\r>\r\nRCPT TO:<\"q\"@x> NOTIFY=NEVER\r\nVRFY x\r\nNOOP\r\nHELP\r\n",
		"EHLO x\r\n" + strings.Repeat("A", 5000) + "\r\nNOOP\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + strings.Repeat("L", 70000) + "\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nDATA\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		sub := &fakeSub{}
		var out testkit.Buffer
		done := make(chan error, 1)
		opt := Options{Hostname: "fuzz.test", MaxMessageSize: 64 << 10, MaxRecipients: 5, ReadTimeout: time.Second}
		go func() {
			done <- ServeStdio(context.Background(), bytes.NewReader(input), &out, sub, opt)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ServeStdio: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("session did not end within 5s; output so far %q", out.String())
		}
		replies := out.String()
		if !strings.HasSuffix(replies, "\r\n") {
			t.Fatalf("output does not end in CRLF: %q", replies)
		}
		queued := 0
		for _, l := range strings.Split(strings.TrimSuffix(replies, "\r\n"), "\r\n") {
			if !replyLine.MatchString(l) {
				t.Fatalf("malformed reply line %q in %q", l, replies)
			}
			if strings.HasPrefix(l, "250 2.0.0 Ok: queued as ") {
				queued++
			}
		}
		if got := len(sub.submissions()); got != queued {
			t.Fatalf("%d messages submitted, %d acknowledged; output %q", got, queued, replies)
		}
	})
}

// FuzzCommandLine checks the command-line rules conn applies: qualify only
// ever inserts "@"+domain once, into a MAIL or RCPT line, and is stable;
// bdatSize accepts only BDAT lines.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<bacula>\r\n", "RCPT TO:<root>\r\n", "rcpt to: root NOTIFY=NEVER\n", "MAIL FROM:<>\r\n",
		"RCPT TO:<\"q\">\r\n", "RCPT TO:<@a,@b:c@d>\r\n", "MAIL FROM:<a@b>\r\n", "BDAT 100 LAST\r\n",
		"bdat 0\r\n", "BDAT  5  last\r\n", "BDAT 99999999999\r\n", "RCPT TO:<r\x00t>\r\n", "MAIL FROM:<x",
	} {
		f.Add([]byte(s))
	}
	const domain = "host.test"
	f.Fuzz(func(t *testing.T, line []byte) {
		q := qualify(line, domain)
		if !bytes.Equal(q, line) {
			if len(q) != len(line)+1+len(domain) {
				t.Fatalf("qualify(%q) = %q", line, q)
			}
			i := bytes.Index(q, []byte("@"+domain))
			if i < 0 || !bytes.Equal(append(append([]byte(nil), q[:i]...), q[i+1+len(domain):]...), line) {
				t.Fatalf("qualify(%q) = %q: not an insertion", line, q)
			}
			if !hasPrefixFold(line, "MAIL ") && !hasPrefixFold(line, "RCPT ") {
				t.Fatalf("qualify rewrote %q", line)
			}
			if again := qualify(q, domain); !bytes.Equal(again, q) {
				t.Fatalf("qualify not stable: %q -> %q -> %q", line, q, again)
			}
		}
		if n, ok := bdatSize(line); ok && (!hasPrefixFold(line, "BDAT ") || n < 0 || n > 1<<32-1) {
			t.Fatalf("bdatSize(%q) = %d", line, n)
		}
	})
}

// FuzzDataEnd checks that finding the end of message data does not depend
// on how the input is split into reads.
func FuzzDataEnd(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", ".\r\n", "\r\r\n.\r\n\r\n.\r\n", "x\n.\n.\r\n", "..\r\n.\r\n", ".\r.\r\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		var whole dataEnd
		wn, wend := whole.scan(b)
		if step == 0 {
			step = 1
		}
		var parts dataEnd
		n, end := 0, false
		for i := 0; i < len(b) && !end; i += int(step) {
			k, e := parts.scan(b[i:min(len(b), i+int(step))])
			n += k
			end = e
		}
		if n != wn || end != wend {
			t.Fatalf("%q: whole %d,%v; in steps of %d: %d,%v", b, wn, wend, step, n, end)
		}
		if wend && !bytes.HasSuffix(b[:wn], []byte(".\r\n")) {
			t.Fatalf("%q: end at %d not after .CRLF", b, wn)
		}
	})
}

func TestDataEnd(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		ends bool
	}{
		{".\r\n", 3, true}, // the CRLF of "DATA" starts the first line
		{"a\r\n.\r\nMAIL", 6, true},
		{"a\n.\n", 4, false},           // bare LF never starts a line
		{"a\r\n.\n.\r\n", 8, false},    // ".\n" is data, and then "\n." is no line start
		{"\r\r\n.\r\n", 6, false},      // go-smtp: CR CR LF does not end a line
		{"a\r\n..\r\n.\r\n", 10, true}, // a stuffed dot
		{"a\r\n.x\r\n.\r\n", 10, true},
	}
	for _, tc := range cases {
		var s dataEnd
		n, ends := s.scan([]byte(tc.in))
		if n != tc.n || ends != tc.ends {
			t.Errorf("scan(%q) = %d, %v; want %d, %v", tc.in, n, ends, tc.n, tc.ends)
		}
	}
}
