package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"herald/internal/metrics"
)

func newMetrics() *metrics.Metrics { return metrics.New() }

// acceptedHTTP returns herald_messages_accepted_total{source="http"}.
func acceptedHTTP(t *testing.T, m *metrics.Metrics) uint64 {
	t.Helper()
	for _, c := range m.Snapshot().Accepted {
		if c.Labels[0] == "http" {
			return c.Value
		}
	}
	t.Fatal("no accepted series for source http")
	return 0
}

func TestPeersOutsideLoopbackRefused(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	tests := []struct {
		remote string
		ok     bool
	}{
		{"127.0.0.1:5000", true},
		{"127.8.9.10:5000", true},
		{"[::1]:5000", true},
		{"[::ffff:127.0.0.1]:5000", true},
		{"[fe80::1%eth0]:5000", false},
		{"203.0.113.7:5000", false},
		{"[2001:db9::1]:5000", false},
		{"192.0.2.44:5000", true},          // in Allow
		{"[::ffff:192.0.2.44]:5000", true}, // in Allow, dual-stack form
		{"[2001:db8::7]:5000", true},       // in Allow
		{"", false},
		{"not-an-address", false},
	}
	paths := []struct{ method, path string }{
		{"POST", "/api/v1/events"},
		{"GET", "/api/push/tok"},
		{"GET", "/metrics"},
		{"GET", "/healthz"},
		{"GET", "/nonexistent"},
	}
	for _, tc := range tests {
		t.Run(tc.remote, func(t *testing.T) {
			sub := &fakeSub{}
			s, _ := newServer(sub, Options{Allow: allow, Metrics: newMetrics()})
			for _, p := range paths {
				body := ""
				if p.method == "POST" {
					body = `{"severity":"info","fields":{"type":"x"}}`
				}
				req := newRequest(p.method, p.path, body, tc.remote, nil)
				rec := recorder()
				s.Handler().ServeHTTP(rec, req)
				if got := rec.Code == http.StatusForbidden; got == tc.ok {
					t.Errorf("%s %s from %q: status %d, want allowed=%v", p.method, p.path, tc.remote, rec.Code, tc.ok)
				}
				if !tc.ok {
					body := jsonBody(t, rec.Body.String())
					if strings.HasPrefix(p.path, "/api/push/") && body["ok"] != false {
						t.Errorf("push refusal %s is not in Kuma's shape", rec.Body)
					}
				}
			}
			if !tc.ok && len(sub.submissions()) != 0 {
				t.Errorf("a refused peer got its event submitted")
			}
		})
	}
}

func TestCrossSiteRequestsRefused(t *testing.T) {
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		code               int
	}{
		{"POST from another site", "POST", "/api/v1/events",
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403},
		{"POST with a foreign Origin only (older browsers)", "POST", "/api/v1/events",
			map[string]string{"Origin": "https://evil.example"}, 403},
		{"push GET from an <img> on another site", "GET", "/api/push/tok?status=down",
			map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"push GET same-site", "GET", "/api/push/tok?status=down",
			map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"typed into the address bar", "GET", "/api/push/tok",
			map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"curl", "POST", "/api/v1/events", nil, 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			s, _ := newServer(sub, Options{})
			body := ""
			if tc.method == "POST" {
				body = `{"severity":"info","fields":{"type":"x"}}`
			}
			req := newRequest(tc.method, tc.path, body, "127.0.0.1:1", tc.hdr)
			rec := recorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code == 403 && len(sub.submissions()) != 0 {
				t.Fatal("a cross-site request was submitted")
			}
		})
	}
}

// TestUnixSocketPeerAllowed serves on a Unix socket: its peers have no IP
// address and are allowed (the socket's file mode is the access control).
func TestUnixSocketPeerAllowed(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "http.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	sub := &fakeSub{}
	s, _ := newServer(sub, Options{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c := &http.Client{Timeout: deadline, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Post("http://herald/api/v1/events", "application/json",
		strings.NewReader(`{"severity":"info","fields":{"type":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d over a Unix socket, want 202", resp.StatusCode)
	}
}

// parseMetrics parses a /metrics reply with the Prometheus text parser.
func parseMetrics(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// series returns the value of name{labels} (labels as k=v pairs, exact).
func series(fams map[string]*dto.MetricFamily, name string, kv ...string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		if len(m.GetLabel())*2 != len(kv) {
			continue
		}
		ok := true
		for i, lp := range m.GetLabel() {
			// Labels come sorted by name; callers pass them sorted.
			if lp.GetName() != kv[2*i] || lp.GetValue() != kv[2*i+1] {
				ok = false
			}
		}
		if !ok {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

func TestMetricsEndpoint(t *testing.T) {
	m := newMetrics()
	pending := 4
	m.SetSources(func() (int, int, int, time.Duration) { return pending, 1, 2, 30 * time.Second },
		func() (int, int64) { return 3, 4096 })
	s, _ := newServer(&fakeSub{}, Options{Metrics: m})
	base := serve(t, s)

	want := func(fams map[string]*dto.MetricFamily, v float64, name string, kv ...string) {
		t.Helper()
		got, ok := series(fams, name, kv...)
		if !ok || got != v {
			t.Errorf("%s%v = %v (present %v), want %v", name, kv, got, ok, v)
		}
	}
	r := fetch(t, "GET", base+"/metrics", "")
	if r.code != http.StatusOK {
		t.Fatalf("/metrics: %d", r.code)
	}
	fams := parseMetrics(t, r.body)
	want(fams, 0, "herald_messages_accepted_total", "source", "http")
	want(fams, 4, "herald_queue_deliveries", "state", "pending")
	want(fams, 1, "herald_queue_deliveries", "state", "inflight")
	want(fams, 2, "herald_queue_deliveries", "state", "dead")
	want(fams, 30, "herald_queue_oldest_pending_seconds")
	want(fams, 3, "herald_spool_entries")
	want(fams, 4096, "herald_spool_bytes")
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Error("Go or process collector missing")
	}

	// Counters move: one event through the API, and the daemon's calls.
	if r := fetch(t, "POST", base+"/api/v1/events", `{"severity":"info","fields":{"type":"x"}}`); r.code != 202 {
		t.Fatalf("POST: %d %s", r.code, r.body)
	}
	if r := fetch(t, "GET", base+"/api/push/tok", ""); r.code != 200 {
		t.Fatalf("push: %d %s", r.code, r.body)
	}
	m.Accepted("smtp")
	m.Event("vzdump", "error")
	m.Delivery("gotify", "dead")
	pending = 0

	fams = parseMetrics(t, fetch(t, "GET", base+"/metrics", "").body)
	want(fams, 2, "herald_messages_accepted_total", "source", "http")
	want(fams, 1, "herald_messages_accepted_total", "source", "smtp")
	want(fams, 1, "herald_events_total", "severity", "error", "type", "vzdump")
	want(fams, 1, "herald_deliveries_total", "outcome", "dead", "target", "gotify")
	want(fams, 0, "herald_queue_deliveries", "state", "pending")
}

func TestMetricsEndpointWithoutMetrics(t *testing.T) {
	s, _ := newServer(&fakeSub{}, Options{})
	if rec := do(s, "GET", "/metrics", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404 without Options.Metrics", rec.Code)
	}
}

func TestHealthz(t *testing.T) {
	var health error
	s, _ := newServer(&fakeSub{}, Options{Healthy: func() error { return health }})
	rec := do(s, "GET", "/healthz", "")
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Fatalf("healthy: %d %q", rec.Code, rec.Body)
	}
	health = errors.New("delivery queue stalled for 5m0s")
	rec = do(s, "GET", "/healthz", "")
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "delivery queue stalled for 5m0s\n" {
		t.Fatalf("unhealthy: %d %q", rec.Code, rec.Body)
	}
	if rec := do(s, "POST", "/healthz", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz: %d, want 405", rec.Code)
	}

	plain, _ := newServer(&fakeSub{}, Options{})
	if rec := do(plain, "GET", "/healthz", ""); rec.Code != 200 {
		t.Fatalf("without Healthy: %d", rec.Code)
	}
}

func TestServerTimeouts(t *testing.T) {
	s, _ := newServer(&fakeSub{}, Options{})
	if s.srv.ReadHeaderTimeout <= 0 || s.srv.ReadTimeout <= 0 || s.srv.WriteTimeout <= 0 ||
		s.srv.IdleTimeout <= 0 || s.srv.MaxHeaderBytes <= 0 {
		t.Fatalf("http.Server without limits: %+v", s.srv)
	}
}

// TestShutdownWaitsForSubmit: a request whose Submit is under way when
// Shutdown starts is completed and answered; Shutdown returns after it.
func TestShutdownWaitsForSubmit(t *testing.T) {
	sub := &fakeSub{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s, _ := newServer(sub, Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()

	got := make(chan response, 1)
	go func() {
		r, err := fetchErr("POST", "http://"+l.Addr().String()+"/api/v1/events", `{"severity":"info","fields":{"type":"x"}}`)
		if err != nil {
			r = response{code: -1, body: err.Error()}
		}
		got <- r
	}()
	select {
	case <-sub.entered:
	case <-time.After(deadline):
		t.Fatal("Submit not called")
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	select {
	case err := <-served:
		// Serve returns as soon as the listener closes; the request is
		// still in progress.
		if err != nil {
			t.Fatalf("Serve: %v, want nil", err)
		}
	case <-time.After(deadline):
		t.Fatal("Serve did not return after Shutdown")
	}
	select {
	case err := <-shut:
		close(sub.release)
		t.Fatalf("Shutdown returned (%v) while a Submit was in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(sub.release)
	select {
	case r := <-got:
		if r.code != http.StatusAccepted {
			t.Fatalf("in-flight request: %d %s, want 202", r.code, r.body)
		}
	case <-time.After(deadline):
		t.Fatal("in-flight request not answered")
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("Shutdown did not return")
	}
	// Serving again after Shutdown returns nil at once.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := s.Serve(l2); err != nil {
		t.Fatalf("Serve after Shutdown: %v, want nil", err)
	}
}
