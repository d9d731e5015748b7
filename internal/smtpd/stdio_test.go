package smtpd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/testkit"
)

// stdioSession runs ServeStdio over two pipes and returns a client for the
// test's side and a channel with ServeStdio's result.
func stdioSession(t *testing.T, ctx context.Context, sub Submitter, opt Options) (*pipeClient, <-chan error) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	lb := &testkit.Buffer{}
	opt.Logger = debugLogger(lb)
	opt.Hostname = "herald.test"
	done := make(chan error, 1)
	go func() {
		done <- ServeStdio(ctx, inR, outW, sub, opt)
		_ = outW.Close()
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		_ = outR.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", lb.String())
		}
	})
	return &pipeClient{t: t, w: inW, r: bufio.NewReader(outR)}, done
}

// pipeClient is client for pipes (which have no deadlines: every read runs
// in a goroutine bounded by wait).
type pipeClient struct {
	t *testing.T
	w io.Writer
	r *bufio.Reader
}

func (c *pipeClient) send(s string) {
	c.t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := io.WriteString(c.w, s); errc <- err }()
	select {
	case err := <-errc:
		if err != nil {
			c.t.Fatalf("send %.40q: %v", s, err)
		}
	case <-time.After(wait):
		c.t.Fatalf("send %.40q: server does not read", s)
	}
}

func (c *pipeClient) expect(code string) string {
	c.t.Helper()
	type res struct {
		s   string
		err error
	}
	rc := make(chan res, 1)
	go func() {
		var all strings.Builder
		for {
			line, err := c.r.ReadString('\n')
			all.WriteString(line)
			if err != nil || len(line) < 4 || line[3] == ' ' {
				rc <- res{all.String(), err}
				return
			}
		}
	}()
	select {
	case r := <-rc:
		if r.err != nil || !strings.HasPrefix(r.s, code) {
			c.t.Fatalf("got %q (%v), want %s...", r.s, r.err, code)
		}
		return r.s
	case <-time.After(wait):
		c.t.Fatalf("no reply within %v, want %s", wait, code)
	}
	return ""
}

func TestServeStdio(t *testing.T) {
	sub := &fakeSub{}
	c, done := stdioSession(t, context.Background(), sub, Options{})
	c.expect("220 herald.test ESMTP")
	c.send("EHLO localhost\r\n")
	if r := c.expect("250-"); !strings.Contains(r, "PIPELINING") || strings.Contains(r, "AUTH") {
		t.Fatalf("EHLO reply %q", r)
	}
	c.send("MAIL FROM:<user>\r\nRCPT TO:<root>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
	c.expect("250 2.0.0")
	c.expect("250 2.0.0")
	c.expect("250 2.0.0")
	c.expect("354 ")
	c.send("Subject: via -bs\r\n\r\nhello\r\n..dot\r\n.\r\n")
	c.expect("250 2.0.0 Ok: queued as ID0001")
	c.send("QUIT\r\n")
	c.expect("221 2.0.0")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("ServeStdio did not return after QUIT")
	}
	got := sub.only(t)
	if got.env.Source != "sendmail" || got.env.Remote != "" || got.env.From != "user@herald.test" ||
		!slices.Equal(got.env.Recipients, []string{"root@herald.test", "b@example.org"}) || got.env.Helo != "localhost" {
		t.Errorf("envelope %+v", got.env)
	}
	if string(got.body) != "Subject: via -bs\r\n\r\nhello\r\n.dot\r\n" {
		t.Errorf("body %q", got.body)
	}
}

func TestServeStdioEOF(t *testing.T) {
	// The input just ends, in the middle of a message: nothing is submitted
	// and ServeStdio returns.
	sub := &fakeSub{}
	var out testkit.Buffer
	in := strings.NewReader("HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: cut\r\n")
	errc := make(chan error, 1)
	go func() { errc <- ServeStdio(context.Background(), in, &out, sub, Options{Hostname: "h"}) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("ServeStdio did not return at end of input")
	}
	if n := len(sub.submissions()); n != 0 {
		t.Fatalf("%d messages submitted", n)
	}
	want := []string{"220 ", "250 ", "250 ", "250 ", "354 ", "451 4.3.0"}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n")
	if len(lines) != len(want) {
		t.Fatalf("replies %q, want %q", lines, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("replies %q, want %q", lines, want)
		}
	}
}

func TestServeStdioCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sub := &fakeSub{}
	c, done := stdioSession(t, ctx, sub, Options{})
	c.expect("220 ")
	c.send("HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("half a message\r\n")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ServeStdio = %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("ServeStdio did not return after cancel")
	}
	if n := len(sub.submissions()); n != 0 {
		t.Fatalf("%d messages submitted", n)
	}
}

func TestServeStdioTimeout(t *testing.T) {
	// Real pipes as stdin and stdout have deadlines: a silent caller is
	// timed out as on the network.
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	defer outR.Close()
	done := make(chan error, 1)
	go func() {
		done <- ServeStdio(context.Background(), inR, outW, &fakeSub{}, Options{Hostname: "h", ReadTimeout: 200 * time.Millisecond})
		_ = outW.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("ServeStdio did not time out")
	}
	b, err := io.ReadAll(outR)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "220 h ESMTP") || !strings.Contains(string(b), "\r\n421 4.4.2") {
		t.Fatalf("output %q", b)
	}
}
