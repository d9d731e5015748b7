package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
	"herald/internal/handlebars"
	"herald/internal/target"
	"herald/internal/testkit"
)

// rawServer accepts HTTP/1.1 requests on loopback and records each one's
// head exactly as it came over the wire, plus its body, so tests can assert
// which headers were (not) sent.
type rawServer struct {
	addr  string
	mu    sync.Mutex
	reqs  []rawRequest
	reply string
	got   chan struct{}
}

type rawRequest struct {
	line   string   // request line
	header []string // header lines as sent
	body   string
}

func (r rawRequest) has(name string) (string, bool) {
	for _, h := range r.header {
		k, v, _ := strings.Cut(h, ":")
		if strings.EqualFold(k, name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func newRawServer(t *testing.T, reply string) *rawServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: l.Addr().String(), reply: reply, got: make(chan struct{}, 16)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *rawServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		req := rawRequest{line: strings.TrimRight(line, "\r\n")}
		n := 0
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			h = strings.TrimRight(h, "\r\n")
			if h == "" {
				break
			}
			req.header = append(req.header, h)
		}
		if cl, ok := req.has("Content-Length"); ok {
			fmt.Sscan(cl, &n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return
		}
		req.body = string(b)
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		s.mu.Unlock()
		s.got <- struct{}{}
		if _, err := io.WriteString(c, s.reply); err != nil {
			return
		}
	}
}

func (s *rawServer) only(t *testing.T) rawRequest {
	t.Helper()
	select {
	case <-s.got:
	case <-time.After(10 * time.Second):
		t.Fatal("server got no request within 10 s")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(s.reqs))
	}
	return s.reqs[0]
}

const ok200 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func testEvent() *event.Event {
	return &event.Event{
		ID: "id-1", Timestamp: time.Unix(1700000000, 0), Severity: event.Error,
		Title:  "vzdump backup status (pve1): backup failed",
		Body:   "Backup of VM \"100\" failed:\n\tdisk ä€😀 <full> & \\ gone\r\nend",
		Fields: map[string]string{"type": "vzdump", "hostname": "pve1"},
	}
}

func b64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNtfyRecipe is the pve-docs ntfy.sh recipe as it is stored on disk
// (docs/proxmox-notify.md §1.7), pointed at a loopback server.
func TestNtfyRecipe(t *testing.T) {
	srv := newRawServer(t, ok200)
	tg, err := New(Options{
		Method:  "post",
		URL:     "http://" + srv.addr + "/{{ secrets.channel }}",
		Headers: []Header{{Name: "Markdown", Value: b64(t, "WWVz")}},
		Body:    b64(t, "YGBgCnt7IG1lc3NhZ2UgfX0KYGBg"),
		Secrets: secretMap(map[string]string{"channel": b64(t, "bXljaGFubmVs")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Deliver(context.Background(), testEvent()); err != nil {
		t.Fatal(err)
	}
	got := srv.only(t)
	wantBody := "```\n" + testEvent().Body + "\n```"
	if got.line != "POST /mychannel HTTP/1.1" {
		t.Errorf("request line %q", got.line)
	}
	if v, _ := got.has("Markdown"); v != "Yes" {
		t.Errorf("Markdown header %q", v)
	}
	if v, _ := got.has("Content-Length"); v != fmt.Sprint(len(wantBody)) {
		t.Errorf("Content-Length %q, want %d", v, len(wantBody))
	}
	if v, ok := got.has("Content-Type"); ok {
		t.Errorf("Content-Type %q sent, Proxmox sends none", v)
	}
	if got.body != wantBody {
		t.Errorf("body\n got %q\nwant %q", got.body, wantBody)
	}
}

func TestDiscordAndSlackRecipes(t *testing.T) {
	tests := []struct {
		name, body, key string
		extra           map[string]string
	}{
		{"discord", "{\"content\": \"``` {{ escape message }}```\"}", "content", nil},
		{"slack", "{\"text\": \"``` {{escape message}}```\", \"type\": \"mrkdwn\"}", "text", map[string]string{"type": "mrkdwn"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, ok200)
			tg, err := New(Options{
				Method:  "POST",
				URL:     "http://" + srv.addr + "/api/webhooks/{{ secrets.token }}",
				Headers: []Header{{Name: "Content-Type", Value: "application/json"}},
				Body:    tc.body,
				Secrets: secretMap(map[string]string{"token": "123/abc-DEF"}),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := tg.Deliver(context.Background(), testEvent()); err != nil {
				t.Fatal(err)
			}
			got := srv.only(t)
			if got.line != "POST /api/webhooks/123/abc-DEF HTTP/1.1" {
				t.Errorf("request line %q", got.line)
			}
			if v, _ := got.has("Content-Type"); v != "application/json" {
				t.Errorf("Content-Type %q", v)
			}
			// The exact bytes: escape gives JSON string escapes (no
			// quotes), non-ASCII and <>& as they are.
			esc := `Backup of VM \"100\" failed:\n\tdisk ä€😀 <full> & \\ gone\r\nend`
			want := strings.Replace(tc.body, map[bool]string{true: "{{ escape message }}", false: "{{escape message}}"}[tc.name == "discord"], esc, 1)
			if got.body != want {
				t.Errorf("body\n got %s\nwant %s", got.body, want)
			}
			var m map[string]string
			if err := json.Unmarshal([]byte(got.body), &m); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if m[tc.key] != "``` "+testEvent().Body+"```" {
				t.Errorf("decoded %s = %q", tc.key, m[tc.key])
			}
			for k, v := range tc.extra {
				if m[k] != v {
					t.Errorf("decoded %s = %q, want %q", k, m[k], v)
				}
			}
		})
	}
}

func TestTemplateData(t *testing.T) {
	srv := newRawServer(t, ok200)
	tg, err := New(Options{
		Method: "put",
		URL:    "http://" + srv.addr + "/hook?title={{ url-encode title }}&sev={{severity}}",
		Headers: []Header{
			{Name: "X-Severity", Value: "{{ severity }}"},
			{Name: "X-Multi", Value: "a"},
			{Name: "X-Multi", Value: "{{fields.hostname}}"},
		},
		Body: "{\"fields\":{{ json fields }},\"ts\":{{ timestamp }},\"title\":{{json title}},\"missing\":\"{{nope}}\"}",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Deliver(context.Background(), testEvent()); err != nil {
		t.Fatal(err)
	}
	got := srv.only(t)
	if want := "PUT /hook?title=vzdump%20backup%20status%20%28pve1%29%3A%20backup%20failed&sev=error HTTP/1.1"; got.line != want {
		t.Errorf("request line\n got %q\nwant %q", got.line, want)
	}
	want := `{"fields":{"hostname":"pve1","type":"vzdump"},"ts":1700000000,"title":"vzdump backup status (pve1): backup failed","missing":""}`
	if got.body != want {
		t.Errorf("body\n got %s\nwant %s", got.body, want)
	}
	var multi []string
	for _, h := range got.header {
		if strings.HasPrefix(strings.ToLower(h), "x-multi:") {
			multi = append(multi, h)
		}
	}
	if v, _ := got.has("X-Severity"); v != "error" || strings.Join(multi, "|") != "X-Multi: a|X-Multi: pve1" {
		t.Errorf("headers %q", got.header)
	}
}

func TestContentLength(t *testing.T) {
	tests := []struct {
		method, body string
		wantCL       string // "" = header absent
	}{
		{"get", "", ""},
		{"get", "q={{severity}}", "7"},
		{"post", "", "0"},
		{"put", "", "0"},
		{"post", "{{title}}", "42"},
	}
	for _, tc := range tests {
		srv := newRawServer(t, ok200)
		tg, err := New(Options{Method: tc.method, URL: "http://" + srv.addr + "/x", Body: tc.body})
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Deliver(context.Background(), testEvent()); err != nil {
			t.Fatal(err)
		}
		got := srv.only(t)
		cl, ok := got.has("Content-Length")
		if tc.wantCL == "" && ok || tc.wantCL != "" && cl != tc.wantCL {
			t.Errorf("%s body %q: Content-Length %q present=%v, want %q", tc.method, tc.body, cl, ok, tc.wantCL)
		}
		if _, ok := got.has("Transfer-Encoding"); ok {
			t.Errorf("%s: chunked encoding used", tc.method)
		}
		if _, ok := got.has("Content-Type"); ok {
			t.Errorf("%s: Content-Type sent", tc.method)
		}
	}
}

func TestNewErrors(t *testing.T) {
	base := Options{Method: "post", URL: "https://example.com/x"}
	tests := []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Method = "" }, "method is required"},
		{func(o *Options) { o.Method = "delete" }, "not post, put or get"},
		{func(o *Options) { o.URL = "example.com/x" }, "must start with http"},
		{func(o *Options) { o.URL = "ftp://example.com" }, "must start with http"},
		{func(o *Options) { o.URL = "https://{{ secrets.host }}/x" }, "host must be given literally"},
		{func(o *Options) { o.URL = "https://example.com/{{#if x}}" }, "url template: line 1, column 21: block {{#if}} is never closed"},
		{func(o *Options) { o.URL = "https://example.com/\n" }, "control characters"},
		{func(o *Options) { o.Headers = []Header{{Name: "Bad Name", Value: "x"}} }, "not a valid HTTP header name"},
		{func(o *Options) { o.Headers = []Header{{Name: "X", Value: "{{x"}} }, "header X value template: line 1"},
		{func(o *Options) { o.Body = "a\n{{/each}}" }, "body template: line 2, column 1"},
		{func(o *Options) { o.Proxy = "::" }, "not a proxy URL"},
	}
	for _, tc := range tests {
		o := base
		tc.mod(&o)
		_, err := New(o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", o, err, tc.want)
		}
	}
}

func TestRenderAndURLErrorsArePermanent(t *testing.T) {
	for _, o := range []Options{
		{Method: "post", URL: "http://127.0.0.1:1/{{ url-encode fields.nope }}"},
		{Method: "post", URL: "http://127.0.0.1:1/x", Body: "{{ escape fields }}"},
		{Method: "post", URL: "http://127.0.0.1:1/x", Headers: []Header{{Name: "X", Value: "{{nosuch title}}"}}},
	} {
		tg, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		err = tg.Deliver(context.Background(), testEvent())
		if err == nil || target.IsTemporary(err) {
			t.Errorf("%+v: %v, want permanent error", o, err)
		}
	}
}

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		reply string
		temp  bool
	}{
		{"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route!", false},
		{"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", true},
		{"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n", true},
		{"HTTP/1.1 204 No Content\r\n\r\n", false},
	} {
		srv := newRawServer(t, tc.reply)
		tg, err := New(Options{Method: "post", URL: "http://" + srv.addr + "/x"})
		if err != nil {
			t.Fatal(err)
		}
		err = tg.Deliver(context.Background(), testEvent())
		if strings.Contains(tc.reply, " 204 ") {
			if err != nil {
				t.Errorf("204: %v", err)
			}
			continue
		}
		if err == nil || target.IsTemporary(err) != tc.temp {
			t.Errorf("%q: %v, want temporary=%v", tc.reply[:20], err, tc.temp)
		}
	}
}

// TestSecretsNeverLeak makes deliveries fail while the server echoes the
// request (URL, headers, body, all carrying secrets) and checks errors,
// Reply, the formatted target/options and a slog line.
func TestSecretsNeverLeak(t *testing.T) {
	secrets := map[string]string{"token": "S3CR3T-token/with space", "short": "xyz123", "inner": "S3CR3T"}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "bad request %s %s auth=%s body=%s", r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), b)
	}))
	defer echo.Close()
	var logBuf bytes.Buffer
	logs := []*slog.Logger{slog.New(slog.NewJSONHandler(&logBuf, nil)), slog.New(slog.NewTextHandler(&logBuf, nil))}

	cases := map[string]Options{
		"echo": {Method: "post", URL: echo.URL + "/{{ secrets.token }}?k={{ url-encode secrets.short }}",
			Headers: []Header{{Name: "Authorization", Value: "Bearer {{ secrets.token }}"}},
			Body:    "{\"t\": \"{{ escape secrets.token }}\", \"s\": \"{{secrets.short}}\"}", Secrets: secretMap(secrets)},
		"refused":          {Method: "get", URL: "http://127.0.0.1:1/{{ secrets.token }}?{{secrets.short}}", Secrets: secretMap(secrets)},
		"bad rendered url": {Method: "get", URL: "http://127.0.0.1:1/%{{ secrets.short }}", Secrets: secretMap(secrets)},
		"bad header value": {Method: "get", URL: "http://127.0.0.1:1/", Secrets: secretMap(secrets),
			Headers: []Header{{Name: "X", Value: "{{ secrets.short }}\n"}}},
	}
	for name, opt := range cases {
		tg, err := New(opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = tg.Deliver(context.Background(), testEvent())
		if err == nil {
			t.Fatalf("%s: delivery succeeded", name)
		}
		for _, l := range logs {
			l.Error("delivery failed", "target", tg, "options", opt, "err", err, "reply", target.Reply(err))
		}
		testkit.NoSecretIn(t, []string{"S3CR3T", "xyz123", "S3CR3T-token%2Fwith+space", "S3CR3T-token%2Fwith%20space"},
			map[string]any{name + ": error": err, name + ": reply": target.Reply(err), name + ": target": tg, name + ": options": opt})
		t.Logf("%s: error %q reply %q", name, err, target.Reply(err))
		if name == "echo" && (!strings.Contains(target.Reply(err), "<masked>") || !strings.HasPrefix(target.Reply(err), "HTTP 400 Bad Request: bad request")) {
			t.Errorf("echo: Reply %q should show the masked echo", target.Reply(err))
		}
	}
	testkit.NoSecretIn(t, []string{"S3CR3T", "xyz123"}, map[string]any{"log": logBuf.String()})
}

func unwrapAll(err error) string {
	var b strings.Builder
	for err != nil {
		b.WriteString(err.Error())
		b.WriteByte('\n')
		err = errors.Unwrap(err)
	}
	return b.String()
}

func TestContextCancel(t *testing.T) {
	srv := newRawServer(t, ok200)
	tg, err := New(Options{Method: "post", URL: "http://" + srv.addr + "/x"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = tg.Deliver(ctx, testEvent())
	if err == nil || !errors.Is(err, context.Canceled) || !target.IsTemporary(err) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestControlCharactersAreSanitised: a title or field with CR, LF or NUL (a
// mail's Subject can carry them) still gets delivered, with the control
// characters made harmless in headers and URL, instead of failing every
// attempt the same way.
func TestControlCharactersAreSanitised(t *testing.T) {
	tests := []struct {
		title, wantHeader string
	}{
		{"disk\r\nfull\x00!", "disk full!"},
		{"a\nb\rc\r\n\r\nd", "a b c d"},
		{"tab\tkept\x01\x7fx", "tab\tkept  x"},
		{"plain", "plain"},
	}
	for _, tc := range tests {
		t.Run(tc.wantHeader, func(t *testing.T) {
			srv := newRawServer(t, ok200)
			tg, err := New(Options{
				Method:  "post",
				URL:     "http://" + srv.addr + "/hook/{{ fields.job }}",
				Headers: []Header{{Name: "X-Title", Value: "{{ title }}"}},
				Body:    "{{ title }}",
			})
			if err != nil {
				t.Fatal(err)
			}
			ev := testEvent()
			ev.Title = tc.title
			ev.Fields["job"] = "a\r\nb\x00"
			if err := tg.Deliver(context.Background(), ev); err != nil {
				t.Fatalf("Deliver with control characters in the title = %v, want delivered", err)
			}
			got := srv.only(t)
			if v, _ := got.has("X-Title"); v != tc.wantHeader {
				t.Errorf("X-Title %q, want %q", v, tc.wantHeader)
			}
			if got.line != "POST /hook/a%0D%0Ab%00 HTTP/1.1" {
				t.Errorf("request line %q", got.line)
			}
			if got.body != tc.title {
				t.Errorf("body %q, want the title unchanged %q", got.body, tc.title)
			}
		})
	}
}

// TestSecretsNeverLeakInAnyEncoding: a server that echoes the request back
// re-encoded (the URL as it arrived, percent escapes lower-cased, the body
// in base64, the headers as Go JSON, a Basic credential) gets no secret
// into the error, the Reply or a log line.
func TestSecretsNeverLeakInAnyEncoding(t *testing.T) {
	tok := `p@ss "w<rd>/&x+y=z`
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hj, _ := json.Marshal(r.Header)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "uri=%s lower=%s body64=%s headers=%s basic=%s",
			r.RequestURI, strings.ToLower(r.RequestURI[len("/hook/"):]), base64.StdEncoding.EncodeToString(b), hj,
			base64.StdEncoding.EncodeToString([]byte("user:"+tok)))
	}))
	defer echo.Close()
	tg, err := New(Options{Method: "post",
		URL:     echo.URL + "/hook/{{ url-encode secrets.tok }}?q={{ url-encode secrets.tok }}",
		Headers: []Header{{Name: "X-Token", Value: "{{ secrets.tok }}"}},
		Body:    `{"t": {{ json secrets.tok }}, "e": "{{ escape secrets.tok }}"}`,
		Secrets: secretMap(map[string]string{"tok": tok})})
	if err != nil {
		t.Fatal(err)
	}
	err = tg.Deliver(context.Background(), testEvent())
	if err == nil {
		t.Fatal("delivery succeeded")
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Error("failed", "err", err, "reply", target.Reply(err))
	got := fmt.Sprintf("%v\n%s\n%s\n%s", err, target.Reply(err), unwrapAll(err), logBuf.String())
	for _, form := range []string{tok, "p@ss", "w<rd>", handlebars.URLEncode(tok), "p%40ss", "w%3crd", "p%40ss%20",
		base64.StdEncoding.EncodeToString([]byte(tok)), "cEBzcyAid", `p@ss \"w`, `p@ss \\\"w`, `\u003crd`} {
		if strings.Contains(got, form) {
			t.Errorf("secret form %q leaked:\n%s", form, got)
		}
	}
	if !strings.Contains(target.Reply(err), "<masked>") {
		t.Errorf("Reply %q shows no masked echo", target.Reply(err))
	}
}

// secretMap makes the secrets of a webhook's options.
func secretMap(m map[string]string) map[string]config.Secret {
	out := make(map[string]config.Secret, len(m))
	for k, v := range m {
		out[k] = config.NewSecret(v)
	}
	return out
}
