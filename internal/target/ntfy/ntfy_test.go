package ntfy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/testkit"
)

const (
	token = "tk_SECRETtoken4711"
	topic = "herald-Alerts_x9"
)

type recorded struct {
	method, path string
	header       http.Header
	body         string
}

type recorder struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	reply  string
	srv    *httptest.Server
}

func newRecorder(t *testing.T, status int, reply string) *recorder {
	r := &recorder{status: status, reply: reply}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.Header.Clone(), string(b)})
		r.mu.Unlock()
		w.WriteHeader(r.status)
		io.WriteString(w, r.reply)
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

func ev(sev event.Severity, title, body string) *event.Event {
	return &event.Event{ID: "id-1", Timestamp: time.Unix(1700000000, 0), Severity: sev, Title: title, Body: body,
		Fields: map[string]string{"type": "vzdump"}}
}

func deliver(t *testing.T, opt Options, e *event.Event) recorded {
	t.Helper()
	rec := newRecorder(t, 200, `{"id":"x"}`)
	if opt.Server == "" {
		opt.Server = rec.srv.URL
	}
	if opt.Topic == "" {
		opt.Topic = topic
	}
	tg, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Deliver(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return rec.only(t)
}

func TestPublishRequest(t *testing.T) {
	body := "Backup of VM 100 failed:\n\tdisk full & \"gone\" <x>\n"
	got := deliver(t, Options{Token: config.NewSecret(token), Tags: []string{"backup", "pve1"}},
		ev(event.Error, "vzdump backup status (pve1): backup failed", body))
	if got.method != "POST" || got.path != "/"+topic {
		t.Errorf("request %s %s", got.method, got.path)
	}
	for k, want := range map[string]string{
		"X-Title":        "vzdump backup status (pve1): backup failed",
		"X-Priority":     "5",
		"X-Tags":         "rotating_light,backup,pve1",
		"Authorization":  "Bearer " + token,
		"Content-Type":   "text/plain; charset=utf-8",
		"Content-Length": fmt.Sprint(len(body)),
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	for _, k := range []string{"Title", "Priority", "Tags"} {
		if v := got.header.Get(k); v != "" {
			t.Errorf("alias header %s = %q sent", k, v)
		}
	}
	if got.body != body {
		t.Errorf("body %q, want %q", got.body, body)
	}
}

func TestUTF8Title(t *testing.T) {
	title := "Sicherung fehlgeschlagen: Größe 😀 " + strings.Repeat("ä", 60)
	got := deliver(t, Options{Tags: []string{"ü-tag"}}, ev(event.Warning, title, "x"))
	raw := got.header.Get("X-Title")
	for i := 0; i < len(raw); i++ {
		if raw[i] >= 0x80 || raw[i] < 0x20 {
			t.Fatalf("X-Title is not plain ASCII: %q", raw)
		}
	}
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(raw); err != nil || s != title {
		t.Errorf("X-Title %q decodes to %q (%v), want %q", raw, s, err, title)
	}
	if s, err := dec.DecodeHeader(got.header.Get("X-Tags")); err != nil || s != "warning,ü-tag" {
		t.Errorf("X-Tags decodes to %q (%v)", s, err)
	}
	// Control characters in a title cannot break the header.
	got = deliver(t, Options{}, ev(event.Info, "a\r\nInjected: yes\tb", "x"))
	if v := got.header.Get("X-Title"); v != "a  Injected: yes b" || got.header.Get("Injected") != "" {
		t.Errorf("X-Title %q, Injected %q", v, got.header.Get("Injected"))
	}
}

func TestPriorityAndTags(t *testing.T) {
	tests := []struct {
		sev  event.Severity
		prio string
		tags string
	}{
		{event.Info, "2", ""},
		{event.Notice, "3", "information_source"},
		{event.Warning, "4", "warning"},
		{event.Error, "5", "rotating_light"},
		{event.Unknown, "3", ""},
	}
	for _, tc := range tests {
		got := deliver(t, Options{}, ev(tc.sev, "t", "b"))
		if got.header.Get("X-Priority") != tc.prio || got.header.Get("X-Tags") != tc.tags {
			t.Errorf("%v: priority %q tags %q, want %q %q", tc.sev, got.header.Get("X-Priority"), got.header.Get("X-Tags"), tc.prio, tc.tags)
		}
		if got.header.Get("Authorization") != "" {
			t.Errorf("Authorization sent without a token")
		}
	}
	got := deliver(t, Options{Priority: 1}, ev(event.Error, "t", "b"))
	if got.header.Get("X-Priority") != "1" {
		t.Errorf("configured priority ignored: %q", got.header.Get("X-Priority"))
	}
}

func TestServerURL(t *testing.T) {
	for _, suffix := range []string{"", "/", "/ntfy", "/ntfy/"} {
		rec := newRecorder(t, 200, "")
		tg, err := New(Options{Server: rec.srv.URL + suffix, Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Deliver(context.Background(), ev(event.Info, "t", "b")); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(suffix, "/") + "/" + topic
		if p := rec.only(t).path; p != want {
			t.Errorf("server suffix %q: path %q, want %q", suffix, p, want)
		}
	}
	tg, err := New(Options{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	req, err := tg.Request(context.Background(), ev(event.Info, "t", "b"))
	if err != nil || req.URL.String() != "https://ntfy.sh/"+topic {
		t.Errorf("default server: %v %v", req.URL, err)
	}
}

func TestBody(t *testing.T) {
	long := strings.Repeat("€", 3000) // 9000 bytes
	got := deliver(t, Options{}, ev(event.Info, "t", long))
	if len(got.body) > DefaultMaxBytes || !utf8.ValidString(got.body) || !strings.HasSuffix(got.body, "\n… (truncated)") {
		t.Errorf("long body: %d bytes, valid=%v, tail %q", len(got.body), utf8.ValidString(got.body), got.body[len(got.body)-20:])
	}
	if !strings.HasPrefix(long, strings.TrimSuffix(got.body, "\n… (truncated)")) {
		t.Error("truncated body is not a prefix of the original")
	}
	got = deliver(t, Options{MaxBytes: -1}, ev(event.Info, "t", long))
	if got.body != long {
		t.Errorf("MaxBytes -1 cut the body to %d bytes", len(got.body))
	}
	got = deliver(t, Options{MaxBytes: 100}, ev(event.Info, "t", strings.Repeat("x", 101)))
	if len(got.body) != 100 {
		t.Errorf("MaxBytes 100: %d bytes", len(got.body))
	}
	// An empty body publishes the title as the message.
	got = deliver(t, Options{}, ev(event.Info, "Only a title", " \n"))
	if got.body != "Only a title" || got.header.Get("X-Title") != "" {
		t.Errorf("empty body: body %q title %q", got.body, got.header.Get("X-Title"))
	}
	got = deliver(t, Options{}, ev(event.Info, "t", "bad \xff utf8"))
	if got.body != "bad \uFFFD utf8" {
		t.Errorf("invalid UTF-8 body sent as %q", got.body)
	}
}

func TestNewErrors(t *testing.T) {
	for _, o := range []Options{
		{Topic: ""},
		{Topic: "has space"},
		{Topic: "a/b"},
		{Topic: strings.Repeat("a", 65)},
		{Topic: topic, Server: "ntfy.sh"},
		{Topic: topic, Server: "https://ntfy.sh?x=1"},
		{Topic: topic, Priority: 6},
		{Topic: topic, Priority: -1},
		{Topic: topic, Tags: []string{"a,b"}},
		{Topic: topic, Tags: []string{""}},
		{Topic: topic, Token: config.NewSecret("tk_a b")},
		{Topic: topic, MaxBytes: 10},
		{Topic: topic, Proxy: "::"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		} else if strings.Contains(err.Error(), "tk_a") {
			t.Errorf("error shows the token: %v", err)
		}
	}
}

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		status int
		temp   bool
	}{{400, false}, {403, false}, {413, false}, {429, true}, {502, true}} {
		rec := newRecorder(t, tc.status, `{"code":42901,"error":"limit reached"}`)
		tg, err := New(Options{Server: rec.srv.URL, Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		err = tg.Deliver(context.Background(), ev(event.Info, "t", "b"))
		if err == nil || target.IsTemporary(err) != tc.temp {
			t.Errorf("%d: %v, want temporary=%v", tc.status, err, tc.temp)
		}
		if !strings.Contains(target.Reply(err), `limit reached`) {
			t.Errorf("%d: Reply %q lacks the server's answer", tc.status, target.Reply(err))
		}
	}
}

// TestSecretsNeverLeak: a server echoing the token and topic in its 403,
// a refused connection, and a context deadline must not show either in
// the error, Reply, formatted target/options or a slog line.
func TestSecretsNeverLeak(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"code":40301,"http":403,"error":"forbidden %s for %s"}`, r.Header.Get("Authorization"), r.URL.Path)
	}))
	defer echo.Close()
	var logBuf bytes.Buffer
	logs := []*slog.Logger{slog.New(slog.NewJSONHandler(&logBuf, nil)), slog.New(slog.NewTextHandler(&logBuf, nil))}
	for name, opt := range map[string]Options{
		"echo":    {Server: echo.URL, Topic: topic, Token: config.NewSecret(token)},
		"refused": {Server: "http://127.0.0.1:1", Topic: topic, Token: config.NewSecret(token)},
	} {
		tg, err := New(opt)
		if err != nil {
			t.Fatal(err)
		}
		err = tg.Deliver(context.Background(), ev(event.Error, "t", "b"))
		if err == nil {
			t.Fatalf("%s: delivery succeeded", name)
		}
		for _, l := range logs {
			l.Error("delivery failed", "target", tg, "options", opt, "err", err, "reply", target.Reply(err))
		}
		testkit.NoSecretIn(t, []string{token, topic}, map[string]any{name + ": error": err, name + ": reply": target.Reply(err),
			name + ": target": tg, name + ": options": opt})
		if name == "echo" && !strings.Contains(target.Reply(err), "forbidden Bearer <masked> for /<masked>") {
			t.Errorf("echo: Reply %q", target.Reply(err))
		}
	}
	testkit.NoSecretIn(t, []string{token, topic}, map[string]any{"log": logBuf.String()})
}
