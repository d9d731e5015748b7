package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"herald/internal/spool"
)

// DNS rebinding: a foreign name in Host is refused with 421 on every
// endpoint, before anything is submitted or served; loopback literals,
// localhost and configured names pass.
func TestHostHeader(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:8025", true},
		{"127.0.0.1", true},
		{"[::1]:8025", true},
		{"192.0.2.10:8025", true}, // an allowed LAN peer uses the server's address
		{"localhost:8025", true},
		{"LOCALHOST.:8025", true},
		{"herald.localhost:8025", true},
		{"herald.example.org:8025", true}, // configured
		{"evil.example:8025", false},
		{"evil.example", false},
		{"localhost.evil.example:8025", false},
		{"127.0.0.1.evil.example", false},
	}
	paths := []struct{ method, path, body string }{
		{"POST", "/api/v1/events", `{"severity":"error","fields":{"type":"vzdump"}}`},
		{"GET", "/api/push/tok?status=down", ""},
		{"GET", "/metrics", ""},
		{"GET", "/healthz", ""},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			sub := &fakeSub{}
			s, logs := newServer(sub, Options{Metrics: newMetrics(), Hosts: []string{"herald.example.org"}})
			for _, p := range paths {
				rec := recorder()
				s.Handler().ServeHTTP(rec, newRequest(p.method, p.path, p.body, "127.0.0.1:1", map[string]string{"Host": tc.host}))
				if refused := rec.Code == http.StatusMisdirectedRequest; refused == tc.ok {
					t.Errorf("%s %s Host %s: status %d, want allowed=%v", p.method, p.path, tc.host, rec.Code, tc.ok)
				}
			}
			if !tc.ok {
				if n := len(sub.submissions()); n != 0 {
					t.Errorf("%d submissions through a foreign Host", n)
				}
				if !strings.Contains(logs.String(), "unknown Host") {
					t.Errorf("no log line:\n%s", logs)
				}
			}
		})
	}
}

// A browser that sends Origin but no Sec-Fetch-Site (older ones, and GETs
// that CrossOriginProtection does not look at) is refused on the
// state-changing endpoints when the Origin is another host or "null".
func TestOriginOnStateChangingEndpoints(t *testing.T) {
	tests := []struct {
		name, method, path, origin string
		code                       int
	}{
		{"push GET from a foreign page", "GET", "/api/push/tok?status=down", "http://evil.example", 403},
		{"push GET from a sandboxed page", "GET", "/api/push/tok?status=down", "null", 403},
		{"events POST from a null origin", "POST", "/api/v1/events", "null", 403},
		{"push GET from the server's own page", "GET", "/api/push/tok", "http://127.0.0.1:8025", 200},
		{"metrics GET with a foreign Origin is read-only", "GET", "/metrics", "http://evil.example", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			s, _ := newServer(sub, Options{Metrics: newMetrics()})
			body := ""
			if tc.method == "POST" {
				body = `{"severity":"info","fields":{"type":"x"}}`
			}
			rec := recorder()
			s.Handler().ServeHTTP(rec, newRequest(tc.method, tc.path, body, "127.0.0.1:1", map[string]string{"Origin": tc.origin}))
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code == 403 && len(sub.submissions()) != 0 {
				t.Fatal("submitted")
			}
		})
	}
}

// Over a real socket, as a rebound browser would send it.
func TestHostHeaderOverTheWire(t *testing.T) {
	sub := &fakeSub{}
	s, _ := newServer(sub, Options{})
	base := serve(t, s)
	req, err := http.NewRequest("POST", base+"/api/v1/events", strings.NewReader(`{"severity":"error","title":"rebound","fields":{"type":"vzdump"}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example:8025"
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || len(sub.submissions()) != 0 {
		t.Fatalf("status %d, %d submissions", resp.StatusCode, len(sub.submissions()))
	}
}

// Below the spool's free-space reserve an event is refused with 503 and
// Retry-After, before the disk is full.
func TestReserveAnswers503(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sp.SetLimits(spool.Limits{MinFree: 1 << 62})
	s := New(sp, Options{})
	rec := do(s, "POST", "/api/v1/events", `{"severity":"error","fields":{"type":"x"}}`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if es, _ := sp.Pending(); len(es) != 0 {
		t.Fatal("spooled below the reserve")
	}
}
