package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/spool"
	"herald/internal/testkit"
)

// deadline bounds every wait in these tests.
const deadline = 10 * time.Second

// fixedNow is the clock of the servers under test.
var fixedNow = time.Date(2025, 3, 14, 3, 0, 7, 500_000_000, time.UTC)

// submitted is one call of fakeSub.Submit.
type submitted struct {
	env  spool.Envelope
	body []byte
	max  int64
}

// fakeSub records submissions. It can be scripted to fail, and to block
// until released (entered is signalled when a Submit starts).
type fakeSub struct {
	mu      sync.Mutex
	calls   []submitted
	err     error
	entered chan struct{}
	release chan struct{}
	n       int
}

func (f *fakeSub) Submit(env spool.Envelope, body io.Reader, maxSize int64) (string, error) {
	b, rerr := io.ReadAll(body)
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rerr != nil {
		return "", rerr
	}
	if f.err != nil {
		return "", f.err
	}
	f.n++
	f.calls = append(f.calls, submitted{env: env, body: b, max: maxSize})
	return spool.NewID(fixedNow), nil
}

func (f *fakeSub) submissions() []submitted {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]submitted(nil), f.calls...)
}

// only returns the one submission and its event.
func (f *fakeSub) only(t *testing.T) (submitted, *event.Event) {
	t.Helper()
	calls := f.submissions()
	if len(calls) != 1 {
		t.Fatalf("%d submissions, want 1", len(calls))
	}
	var ev event.Event
	if err := json.Unmarshal(calls[0].body, &ev); err != nil {
		t.Fatalf("stored body is not event JSON: %v\n%s", err, calls[0].body)
	}
	return calls[0], &ev
}

func newLogger() (*slog.Logger, *testkit.Buffer) {
	buf := &testkit.Buffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newServer returns a Server over sub with a fixed clock and a log buffer.
func newServer(sub Submitter, opt Options) (*Server, *testkit.Buffer) {
	log, buf := newLogger()
	if opt.Logger == nil {
		opt.Logger = log
	}
	if opt.Now == nil {
		opt.Now = func() time.Time { return fixedNow }
	}
	if opt.PushMonitor == nil {
		opt.PushMonitor = knownTokens
	}
	return New(sub, opt), buf
}

// knownTokens is the heartbeats' token lookup of the servers under test.
func knownTokens(token string) (string, bool) {
	switch token {
	case kumaToken:
		return "nightly-backup", true
	case "tok":
		return "tok-job", true
	}
	return "", false
}

// do runs one request through the handler from a loopback peer.
func do(s *Server, method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:40000"
	req.Host = "127.0.0.1:8025" // httptest's example.com is a foreign Host
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// newRequest makes a request from remote with extra headers.
func newRequest(method, target, body, remote string, hdr map[string]string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = remote
	req.Host = "127.0.0.1:8025" // httptest's example.com is a foreign Host
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req
}

func recorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// serve runs s on a real listener on 127.0.0.1:0 and returns its base URL;
// the server is shut down when the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after Shutdown, want nil", err)
			}
		case <-time.After(deadline):
			t.Errorf("Serve did not return within %v of Shutdown", deadline)
		}
	})
	return "http://" + l.Addr().String()
}

// client is the HTTP client of the tests; every request has a deadline.
var client = &http.Client{Timeout: deadline}

// response is a finished HTTP exchange.
type response struct {
	code   int
	header http.Header
	body   string
}

func fetch(t *testing.T, method, url, body string) response {
	t.Helper()
	r, err := fetchErr(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func fetchErr(method, url, body string) (response, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header, string(b)}, nil
}

// jsonBody decodes a JSON reply into a map.
func jsonBody(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("reply is not a JSON object: %v: %q", err, body)
	}
	return m
}

// temporaryErr is what the spool returns when the disk is full.
var temporaryErr error = &fs.PathError{Op: "write", Path: "/var/lib/herald/spool/incoming/x", Err: syscall.ENOSPC}
