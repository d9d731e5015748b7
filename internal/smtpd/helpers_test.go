package smtpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/spool"
	"herald/internal/testkit"
)

// wait is the deadline for anything a test waits on.
const wait = 10 * time.Second

// submission is what the fake Submitter received for one message.
type submission struct {
	id   string
	env  spool.Envelope
	body []byte
}

// fakeSub behaves like the spool as far as the listener can tell: it reads
// the body up to one byte past maxSize, returns spool.ErrTooLarge beyond it
// and a spool.BodyError when reading fails. Errors queued in fail are
// returned by the next calls instead of success.
type fakeSub struct {
	mu    sync.Mutex
	got   []submission
	fail  []error
	calls int
	// started, if set, receives a value when Submit begins reading.
	started chan struct{}
	// hold, if set, is waited on after the body was read, before returning.
	hold chan struct{}
}

func (f *fakeSub) Submit(env spool.Envelope, body io.Reader, maxSize int64) (string, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	var fail error
	if len(f.fail) > 0 {
		fail, f.fail = f.fail[0], f.fail[1:]
	}
	started, hold := f.started, f.hold
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	r := body
	if maxSize > 0 {
		r = io.LimitReader(body, maxSize+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", &spool.BodyError{Err: err}
	}
	if maxSize > 0 && int64(len(b)) > maxSize {
		return "", spool.ErrTooLarge
	}
	if hold != nil {
		<-hold
	}
	if fail != nil {
		return "", fail
	}
	id := fmt.Sprintf("ID%04d", n)
	f.mu.Lock()
	f.got = append(f.got, submission{id: id, env: env, body: b})
	f.mu.Unlock()
	return id, nil
}

func (f *fakeSub) submissions() []submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]submission(nil), f.got...)
}

// only returns the one submission there must be.
func (f *fakeSub) only(t *testing.T) submission {
	t.Helper()
	got := f.submissions()
	if len(got) != 1 {
		t.Fatalf("submitted %d messages, want 1: %+v", len(got), got)
	}
	return got[0]
}

// debugLogger logs everything, down to debug, into l.
func debugLogger(l *testkit.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testServer is a Server running on one loopback listener.
type testServer struct {
	*Server
	addr   string
	log    *testkit.Buffer
	served chan error
}

// start runs a server on addr ("127.0.0.1:0" or "[::1]:0") until the test
// ends. opt.Logger is replaced by a buffer the test can read.
func start(t *testing.T, sub Submitter, opt Options, addr string) *testServer {
	t.Helper()
	lns, err := ListenLoopback([]string{addr})
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	return serveOn(t, sub, opt, lns[0])
}

func serveOn(t *testing.T, sub Submitter, opt Options, l net.Listener) *testServer {
	t.Helper()
	lb := &testkit.Buffer{}
	opt.Logger = debugLogger(lb)
	if opt.Hostname == "" {
		opt.Hostname = "herald.test"
	}
	ts := &testServer{Server: New(sub, opt), addr: l.Addr().String(), log: lb, served: make(chan error, 1)}
	go func() { ts.served <- ts.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		select {
		case err := <-ts.served:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Serve did not return after Shutdown")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", lb.String())
		}
	})
	return ts
}

// client is a scripted SMTP client on a raw connection.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := c.c.SetWriteDeadline(time.Now().Add(wait)); err != nil {
		c.t.Fatal(err)
	}
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send %.40q: %v", s, err)
	}
}

// reply reads one (possibly multi-line) reply and returns its code and its
// lines without the code.
func (c *client) reply() (int, []string, error) {
	if err := c.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return 0, nil, err
	}
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, lines, err
		}
		if !strings.HasSuffix(line, "\r\n") || len(line) < 6 {
			return 0, lines, fmt.Errorf("malformed reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, lines, fmt.Errorf("malformed reply line %q", line)
		}
		lines = append(lines, line[4:len(line)-2])
		if line[3] == ' ' {
			return code, lines, nil
		}
	}
}

// expect reads a reply and fails unless its code is code and its last line
// starts with prefix. It returns the reply's lines.
func (c *client) expect(code int, prefix string) []string {
	c.t.Helper()
	got, lines, err := c.reply()
	if err != nil {
		c.t.Fatalf("waiting for %d %s: %v (lines so far %q)", code, prefix, err, lines)
	}
	if got != code || !strings.HasPrefix(lines[len(lines)-1], prefix) {
		c.t.Fatalf("got %d %q, want %d %s...", got, lines, code, prefix)
	}
	return lines
}

// expectClosed fails unless the server closes the connection within wait.
func (c *client) expectClosed() {
	c.t.Helper()
	if err := c.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		c.t.Fatal(err)
	}
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.ReadString('\n')
		c.t.Fatalf("connection still open, got %q", string(b)+rest)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("server did not close the connection within %v", wait)
	}
}

// mail runs one whole transaction after the greeting and HELO/EHLO.
func (c *client) mail(from string, rcpts []string, body string) string {
	c.t.Helper()
	c.send("MAIL FROM:<" + from + ">\r\n")
	c.expect(250, "2.0.0")
	for _, r := range rcpts {
		c.send("RCPT TO:<" + r + ">\r\n")
		c.expect(250, "2.0.0")
	}
	c.send("DATA\r\n")
	c.expect(354, "")
	c.send(body + ".\r\n")
	lines := c.expect(250, "2.0.0 Ok: queued as ")
	return strings.TrimPrefix(lines[0], "2.0.0 Ok: queued as ")
}

// greet dials, reads the greeting and says EHLO.
func greet(t *testing.T, addr string) *client {
	t.Helper()
	c := dial(t, addr)
	c.expect(220, "herald.test ESMTP")
	c.send("EHLO client.test\r\n")
	c.expect(250, "")
	return c
}

// waitFor polls cond until it holds or wait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
