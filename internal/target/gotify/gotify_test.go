package gotify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/testkit"
)

const token = "tok-SECRET-4711"

// recorder is an httptest server that records requests and answers with a
// scripted status and body.
type recorder struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	body   string
	header map[string]string
	srv    *httptest.Server
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
	contentLen   int64
}

func newRecorder(t *testing.T, status int, body string) *recorder {
	r := &recorder{status: status, body: body}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.Header.Clone(), b, req.ContentLength})
		for k, v := range r.header {
			w.Header().Set(k, v)
		}
		r.mu.Unlock()
		w.WriteHeader(r.status)
		io.WriteString(w, r.body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) only(t *testing.T) recorded {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(r.reqs))
	}
	return r.reqs[0]
}

func testEvent(sev event.Severity) *event.Event {
	return &event.Event{
		ID: "id-1", Timestamp: time.Unix(1700000000, 0), Severity: sev,
		Title: `Backup "pve1" <ok> ä`, Body: "line 1\n\tline 2 € & done",
		Fields: map[string]string{"type": "vzdump"},
	}
}

func TestDeliverRequest(t *testing.T) {
	rec := newRecorder(t, 200, `{"id":1}`)
	tg := New(Options{Server: rec.srv.URL, Token: config.NewSecret(token)})
	if err := tg.Deliver(context.Background(), testEvent(event.Error)); err != nil {
		t.Fatal(err)
	}
	got := rec.only(t)
	if got.method != "POST" || got.path != "/message" {
		t.Errorf("request %s %s, want POST /message", got.method, got.path)
	}
	for k, want := range map[string]string{
		"Authorization":  "Bearer " + token,
		"X-Gotify-Key":   token,
		"Content-Type":   "application/json",
		"Content-Length": fmt.Sprint(len(got.body)),
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	want := "{\"title\":\"Backup \\\"pve1\\\" <ok> ä\",\"message\":\"```\\nline 1\\n\\tline 2 € & done\\n```\"," +
		"\"priority\":9,\"extras\":{\"client::display\":{\"contentType\":\"text/markdown\"}}}"
	if string(got.body) != want {
		t.Errorf("body\n got %s\nwant %s", got.body, want)
	}
}

func TestPriority(t *testing.T) {
	want := map[event.Severity]int{event.Info: 1, event.Notice: 3, event.Warning: 5, event.Error: 9, event.Unknown: 3}
	for sev, p := range want {
		rec := newRecorder(t, 200, "")
		if err := New(Options{Server: rec.srv.URL, Token: config.NewSecret(token)}).Deliver(context.Background(), testEvent(sev)); err != nil {
			t.Fatal(err)
		}
		if b := rec.only(t).body; !bytes.Contains(b, []byte(fmt.Sprintf(`"priority":%d,`, p))) {
			t.Errorf("%v: body %s, want priority %d", sev, b, p)
		}
	}
}

func TestServerPath(t *testing.T) {
	for _, tc := range []struct{ suffix, path string }{
		{"", "/message"}, {"/", "/message"}, {"/gotify", "/gotify/message"}, {"/gotify/", "/gotify/message"},
	} {
		rec := newRecorder(t, 200, "")
		if err := New(Options{Server: rec.srv.URL + tc.suffix, Token: config.NewSecret(token)}).Deliver(context.Background(), testEvent(event.Info)); err != nil {
			t.Fatal(err)
		}
		if p := rec.only(t).path; p != tc.path {
			t.Errorf("server %q: path %q, want %q", tc.suffix, p, tc.path)
		}
	}
}

func TestClassification(t *testing.T) {
	tests := []struct {
		status     int
		header     map[string]string
		temp       bool
		retryAfter time.Duration
	}{
		{400, nil, false, 0},
		{401, nil, false, 0},
		{404, nil, false, 0},
		{429, map[string]string{"Retry-After": "7"}, true, 7 * time.Second},
		{500, nil, true, 0},
		{503, map[string]string{"Retry-After": "30"}, true, 30 * time.Second},
	}
	for _, tc := range tests {
		rec := newRecorder(t, tc.status, `{"error":"nope"}`)
		rec.header = tc.header
		err := New(Options{Server: rec.srv.URL, Token: config.NewSecret(token)}).Deliver(context.Background(), testEvent(event.Info))
		if err == nil {
			t.Fatalf("%d: no error", tc.status)
		}
		if target.IsTemporary(err) != tc.temp || target.RetryAfter(err) != tc.retryAfter {
			t.Errorf("%d: temporary=%v retryAfter=%v, want %v %v (%v)", tc.status,
				target.IsTemporary(err), target.RetryAfter(err), tc.temp, tc.retryAfter, err)
		}
		wantReply := fmt.Sprintf("HTTP %d %s: {\"error\":\"nope\"}", tc.status, http.StatusText(tc.status))
		if r := target.Reply(err); r != wantReply {
			t.Errorf("%d: Reply %q, want %q", tc.status, r, wantReply)
		}
	}
}

func TestConnectionErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	err = New(Options{Server: "http://" + addr, Token: config.NewSecret(token)}).Deliver(context.Background(), testEvent(event.Info))
	if err == nil || !target.IsTemporary(err) {
		t.Fatalf("refused connection: %v, want temporary error", err)
	}

	// A server that never answers: the context deadline ends the attempt.
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer hang.Close()
	defer close(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = New(Options{Server: hang.URL, Token: config.NewSecret(token)}).Deliver(ctx, testEvent(event.Info))
	if err == nil || !target.IsTemporary(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging server: %v, want temporary deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("deadline not honoured: took %v", d)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, o := range []Options{
		{Server: "", Token: config.NewSecret(token)},
		{Server: "gotify.example.com", Token: config.NewSecret(token)},
		{Server: "ftp://x", Token: config.NewSecret(token)},
		{Server: "http://x", Token: config.NewSecret("")},
		{Server: "http://x", Token: config.NewSecret("a\nb")},
		{Server: "http://x", Token: config.NewSecret(token), Proxy: "::nope"},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%v) = nil", o)
		}
		err := New(o).Deliver(context.Background(), testEvent(event.Info))
		if err == nil || target.IsTemporary(err) {
			t.Errorf("Deliver with %v: %v, want permanent error", o, err)
		}
	}
}

// TestTokenNeverLeaks makes delivery fail in every way that could echo the
// token (a server repeating it in its 401 body, raw and escaped; a redirect
// to another host; a config error) and checks the error text, Reply, the
// formatted target and options, and a slog line about all of them.
func TestTokenNeverLeaks(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"Unauthorized","errorDescription":"bad token %s / %q / %s / %s"}`,
			r.Header.Get("X-Gotify-Key"), r.Header.Get("Authorization"), r.URL.String(), strings.Repeat("x", 300))
	}))
	defer echo.Close()

	// A redirect to another host name must not be followed: Go would send
	// X-Gotify-Key along.
	var leaked sync.Mutex
	gotKey := ""
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Lock()
		gotKey = r.Header.Get("X-Gotify-Key") + r.Header.Get("Authorization")
		leaked.Unlock()
	}))
	defer other.Close()
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+"/message?token="+token, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	textLogger := slog.New(slog.NewTextHandler(&logBuf, nil))

	for name, opt := range map[string]Options{
		"echo 401":     {Server: echo.URL, Token: config.NewSecret(token)},
		"redirect":     {Server: redirect.URL, Token: config.NewSecret(token)},
		"bad server":   {Server: "http://" + token + ":x@[::1", Token: config.NewSecret(token)},
		"proxy broken": {Server: echo.URL, Token: config.NewSecret(token), Proxy: "http://127.0.0.1:1"},
	} {
		tg := New(opt)
		err := tg.Deliver(context.Background(), testEvent(event.Error))
		if err == nil {
			t.Fatalf("%s: delivery succeeded", name)
		}
		logger.Error("delivery failed", "target", tg, "options", opt, "err", err, "reply", target.Reply(err))
		textLogger.Error("delivery failed", "target", tg, "options", opt, "err", err)
		testkit.NoSecretIn(t, []string{token}, map[string]any{name + ": error": err, name + ": reply": target.Reply(err),
			name + ": target": tg, name + ": options": opt})
		if name == "echo 401" && !strings.Contains(target.Reply(err), "<masked>") {
			t.Errorf("echo 401: Reply %q does not show the masked echo", target.Reply(err))
		}
	}
	testkit.NoSecretIn(t, []string{token}, map[string]any{"log": logBuf.String()})
	leaked.Lock()
	defer leaked.Unlock()
	if gotKey != "" {
		t.Errorf("redirect to another host was followed and received %q", gotKey)
	}
}

func TestSameHostRedirectFollowed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/old/message", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new/message", http.StatusPermanentRedirect)
	})
	var got recorded
	mux.HandleFunc("/new/message", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = recorded{method: r.Method, path: r.URL.Path, header: r.Header, body: b}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := New(Options{Server: srv.URL + "/old", Token: config.NewSecret(token)}).Deliver(context.Background(), testEvent(event.Info)); err != nil {
		t.Fatal(err)
	}
	if got.method != "POST" || got.header.Get("X-Gotify-Key") != token || len(got.body) == 0 {
		t.Errorf("after 308: %s %s key=%v body=%d bytes", got.method, got.path, got.header.Get("X-Gotify-Key") != "", len(got.body))
	}
}
