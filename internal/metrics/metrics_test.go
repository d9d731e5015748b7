package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches m's handler and parses the text exposition format.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, body %q", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels are
// exactly labels, and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok {
		t.Fatalf("%s%v: series missing", name, labels)
	}
	if got != want {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestCountersMove(t *testing.T) {
	m := New()
	fams := scrape(t, m)
	for _, src := range []string{"smtp", "sendmail", "notify", "http"} {
		mustValue(t, fams, "herald_messages_accepted_total", map[string]string{"source": src}, 0)
	}
	if _, ok := fams["herald_events_total"]; ok {
		t.Fatal("herald_events_total present before any event")
	}

	m.Accepted("smtp")
	m.Accepted("smtp")
	m.Accepted("http")
	m.Accepted("carrier-pigeon")
	m.Event("vzdump", "info")
	m.Event("vzdump", "error")
	m.Event("vzdump", "error")
	m.Event("smartd", "bogus")
	m.Delivery("mail-root", "delivered")
	m.Delivery("mail-root", "done")
	m.Delivery("gotify", "retry")
	m.Delivery("gotify", "pending")
	m.Delivery("gotify", "dead")
	m.Delivery("gotify", "exploded")

	fams = scrape(t, m)
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"herald_messages_accepted_total", map[string]string{"source": "smtp"}, 2},
		{"herald_messages_accepted_total", map[string]string{"source": "http"}, 1},
		{"herald_messages_accepted_total", map[string]string{"source": "sendmail"}, 0},
		{"herald_messages_accepted_total", map[string]string{"source": "other"}, 1},
		{"herald_events_total", map[string]string{"type": "vzdump", "severity": "info"}, 1},
		{"herald_events_total", map[string]string{"type": "vzdump", "severity": "error"}, 2},
		{"herald_events_total", map[string]string{"type": "smartd", "severity": "other"}, 1},
		{"herald_deliveries_total", map[string]string{"target": "mail-root", "outcome": "delivered"}, 2},
		{"herald_deliveries_total", map[string]string{"target": "gotify", "outcome": "retry"}, 2},
		{"herald_deliveries_total", map[string]string{"target": "gotify", "outcome": "dead"}, 1},
		{"herald_deliveries_total", map[string]string{"target": "gotify", "outcome": "other"}, 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.name, tc.labels), func(t *testing.T) {
			mustValue(t, fams, tc.name, tc.labels, tc.want)
		})
	}
	for _, name := range []string{"herald_messages_accepted_total", "herald_events_total", "herald_deliveries_total"} {
		if got := fams[name].GetType(); got != dto.MetricType_COUNTER {
			t.Errorf("%s has type %v, want counter", name, got)
		}
	}
}

func TestGoAndProcessCollectors(t *testing.T) {
	fams := scrape(t, New())
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("%s missing from the exposition", name)
		}
	}
}

func TestGaugesFromSources(t *testing.T) {
	m := New()
	fams := scrape(t, m)
	for _, name := range []string{"herald_queue_deliveries", "herald_queue_oldest_pending_seconds", "herald_spool_bytes", "herald_spool_entries"} {
		if fams[name] != nil {
			t.Fatalf("%s present without a source", name)
		}
	}

	var mu sync.Mutex
	pending, inflight, dead, oldest := 3, 1, 2, 90*time.Second
	entries, bytes := 5, int64(12345)
	m.SetSources(func() (int, int, int, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		return pending, inflight, dead, oldest
	}, func() (int, int64) {
		mu.Lock()
		defer mu.Unlock()
		return entries, bytes
	})

	check := func(p, i, d int, o time.Duration, e int, b int64) {
		t.Helper()
		fams := scrape(t, m)
		mustValue(t, fams, "herald_queue_deliveries", map[string]string{"state": "pending"}, float64(p))
		mustValue(t, fams, "herald_queue_deliveries", map[string]string{"state": "inflight"}, float64(i))
		mustValue(t, fams, "herald_queue_deliveries", map[string]string{"state": "dead"}, float64(d))
		mustValue(t, fams, "herald_queue_oldest_pending_seconds", nil, o.Seconds())
		mustValue(t, fams, "herald_spool_entries", nil, float64(e))
		mustValue(t, fams, "herald_spool_bytes", nil, float64(b))
		for _, name := range []string{"herald_queue_deliveries", "herald_spool_bytes"} {
			if got := fams[name].GetType(); got != dto.MetricType_GAUGE {
				t.Errorf("%s has type %v, want gauge", name, got)
			}
		}
		s := m.Snapshot()
		if s.Queue == nil || *s.Queue != (QueueFigures{p, i, d, o}) {
			t.Errorf("Snapshot().Queue = %+v, want %+v", s.Queue, QueueFigures{p, i, d, o})
		}
		if s.Spool == nil || *s.Spool != (SpoolFigures{e, b}) {
			t.Errorf("Snapshot().Spool = %+v, want %+v", s.Spool, SpoolFigures{e, b})
		}
	}
	check(3, 1, 2, 90*time.Second, 5, 12345)

	// Read at scrape time: a change shows in the next scrape.
	mu.Lock()
	pending, inflight, dead, oldest = 0, 0, 7, 1500*time.Millisecond
	entries, bytes = 0, 0
	mu.Unlock()
	check(0, 0, 7, 1500*time.Millisecond, 0, 0)
}

func TestEventTypeCardinalityIsBounded(t *testing.T) {
	m := New()
	for i := range MaxEventTypes + 50 {
		m.Event(fmt.Sprintf("type-%03d", i), "info")
	}
	m.Event("type-000", "info") // admitted earlier: keeps its name
	m.Event("", "warning")      // no type at all

	fams := scrape(t, m)
	series := fams["herald_events_total"].GetMetric()
	// MaxEventTypes admitted types plus "other" for info and for warning.
	if got, want := len(series), MaxEventTypes+2; got != want {
		t.Fatalf("%d series, want %d", got, want)
	}
	mustValue(t, fams, "herald_events_total", map[string]string{"type": "type-000", "severity": "info"}, 2)
	mustValue(t, fams, "herald_events_total", map[string]string{"type": fmt.Sprintf("type-%03d", MaxEventTypes-1), "severity": "info"}, 1)
	mustValue(t, fams, "herald_events_total", map[string]string{"type": "other", "severity": "info"}, 50)
	mustValue(t, fams, "herald_events_total", map[string]string{"type": "other", "severity": "warning"}, 1)
	if _, ok := value(fams, "herald_events_total", map[string]string{"type": fmt.Sprintf("type-%03d", MaxEventTypes), "severity": "info"}); ok {
		t.Fatal("a type beyond MaxEventTypes got its own series")
	}
}

func TestLabelValuesAreSanitised(t *testing.T) {
	m := New()
	long := strings.Repeat("ä", 100) // 200 bytes
	m.Event("bad\xffutf8", "error")
	m.Event(long, "info")
	m.Delivery("tgt\xfe", "dead")

	fams := scrape(t, m) // would fail to gather (or panic) on invalid UTF-8
	mustValue(t, fams, "herald_events_total", map[string]string{"type": "bad\uFFFDutf8", "severity": "error"}, 1)
	mustValue(t, fams, "herald_events_total", map[string]string{"type": strings.Repeat("ä", maxLabelLen/2), "severity": "info"}, 1)
	mustValue(t, fams, "herald_deliveries_total", map[string]string{"target": "tgt\uFFFD", "outcome": "dead"}, 1)
}

func TestSnapshot(t *testing.T) {
	m := New()
	m.Accepted("notify")
	m.Event("vzdump", "info")
	m.Event("cron", "info")
	m.Delivery("b", "delivered")
	m.Delivery("a", "retry")
	s := m.Snapshot()

	if s.Queue != nil || s.Spool != nil {
		t.Fatalf("gauges without sources: %+v %+v", s.Queue, s.Spool)
	}
	want := []Count{{[]string{"http"}, 0}, {[]string{"notify"}, 1}, {[]string{"sendmail"}, 0}, {[]string{"smtp"}, 0}}
	if fmt.Sprint(s.Accepted) != fmt.Sprint(want) {
		t.Errorf("Accepted = %v, want %v", s.Accepted, want)
	}
	want = []Count{{[]string{"cron", "info"}, 1}, {[]string{"vzdump", "info"}, 1}}
	if fmt.Sprint(s.Events) != fmt.Sprint(want) {
		t.Errorf("Events = %v, want %v", s.Events, want)
	}
	want = []Count{{[]string{"a", "retry"}, 1}, {[]string{"b", "delivered"}, 1}}
	if fmt.Sprint(s.Deliveries) != fmt.Sprint(want) {
		t.Errorf("Deliveries = %v, want %v", s.Deliveries, want)
	}
}

func TestNilMetricsIsInert(t *testing.T) {
	var m *Metrics
	m.Accepted("smtp")
	m.Event("x", "info")
	m.Delivery("t", "dead")
	m.SetSources(nil, nil)
	if s := m.Snapshot(); s.Accepted != nil || s.Queue != nil {
		t.Fatalf("nil Metrics has a snapshot: %+v", s)
	}
}

// TestConcurrentUse runs counts, scrapes and snapshots at once (for -race).
func TestConcurrentUse(t *testing.T) {
	m := New()
	m.SetSources(func() (int, int, int, time.Duration) { return 1, 0, 0, time.Second },
		func() (int, int64) { return 1, 10 })
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				m.Accepted("smtp")
				m.Event(fmt.Sprintf("t%d", (g*200+i)%150), "info")
				m.Delivery("x", "delivered")
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			// Write, not scrape: t.Fatal must not run off the test goroutine.
			if err := m.Write(io.Discard); err != nil {
				t.Errorf("Write: %v", err)
			}
			_ = m.Snapshot()
		}
	})
	wg.Wait()
	fams := scrape(t, m)
	mustValue(t, fams, "herald_messages_accepted_total", map[string]string{"source": "smtp"}, 800)
	mustValue(t, fams, "herald_deliveries_total", map[string]string{"target": "x", "outcome": "delivered"}, 800)
	var total float64
	for _, s := range fams["herald_events_total"].GetMetric() {
		total += s.GetCounter().GetValue()
	}
	if total != 800 {
		t.Fatalf("events total %v, want 800", total)
	}
}
