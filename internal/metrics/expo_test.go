package metrics

import (
	"bufio"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestExpositionEscapesLabelsAndHelp(t *testing.T) {
	var b strings.Builder
	e := &expo{w: bufio.NewWriter(&b)}
	f := &family{name: "x_total", typ: "counter", help: "a \\ help\nline", labels: []string{"z", "a"}}
	e.family(f, []sample{
		{values: []string{"q\"uote", "back\\slash\nnl"}, value: 2},
		{values: []string{"b", "a"}, value: 1},
	})
	e.w.Flush()
	want := "# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\n" +
		"x_total{a=\"a\",z=\"b\"} 1\n" +
		"x_total{a=\"back\\\\slash\\nnl\",z=\"q\\\"uote\"} 2\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := value(fams, "x_total", map[string]string{"z": "q\"uote", "a": "back\\slash\nnl"}); !ok || v != 2 {
		t.Fatalf("escaped series = %v (present %v)", v, ok)
	}
	if got := fams["x_total"].GetHelp(); got != "a \\ help\nline" {
		t.Fatalf("help %q", got)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 1: "1", 0.25: "0.25", 1e21: "1e+21", 1234567: "1.234567e+06",
		math.Inf(1): "+Inf", math.Inf(-1): "-Inf",
	} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
	if got := formatValue(math.NaN()); got != "NaN" {
		t.Errorf("NaN: %q", got)
	}
}

func TestEmptyFamilyLeftOut(t *testing.T) {
	var b strings.Builder
	e := &expo{w: bufio.NewWriter(&b)}
	e.family(&family{name: "none", typ: "gauge", help: "h"}, nil)
	e.w.Flush()
	if b.Len() != 0 {
		t.Fatalf("wrote %q for a family without samples", b.String())
	}
}

// A source that panics costs only its own families.
func TestPanickingSourceKeepsTheRest(t *testing.T) {
	m := New()
	m.SetSources(func() (int, int, int, time.Duration) { panic("queue is gone") }, nil)
	m.SetMonitors(func() []Monitor { return []Monitor{{Name: "backup", Up: true}} })
	m.Accepted("smtp")
	var b strings.Builder
	if err := m.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "# a collector failed: queue is gone") {
		t.Errorf("no comment on the failed section:\n%s", out)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, name := range []string{"herald_monitor_up", "herald_info", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing after another section panicked", name)
		}
	}
}

func TestRuntimeAndProcessSeries(t *testing.T) {
	fams := scrape(t, New())
	gc := fams["go_gc_duration_seconds"]
	if gc.GetType() != dto.MetricType_SUMMARY || len(gc.GetMetric()) != 1 || len(gc.GetMetric()[0].GetSummary().GetQuantile()) != 5 {
		t.Errorf("go_gc_duration_seconds is not a summary with 5 quantiles: %v", gc)
	}
	if got := fams["process_cpu_seconds_total"].GetType(); got != dto.MetricType_COUNTER {
		t.Errorf("process_cpu_seconds_total type %v", got)
	}
	now := float64(time.Now().Unix())
	start, _ := value(fams, "process_start_time_seconds", map[string]string{})
	// The test binary started before this test and not long before.
	if start > now+1 || start < now-3600 {
		t.Errorf("process_start_time_seconds %v, now %v", start, now)
	}
	rss, _ := value(fams, "process_resident_memory_bytes", map[string]string{})
	if rss < 1<<20 {
		t.Errorf("process_resident_memory_bytes %v", rss)
	}
	fds, _ := value(fams, "process_open_fds", map[string]string{})
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams = scrape(t, New())
	fds2, _ := value(fams, "process_open_fds", map[string]string{})
	if fds < 3 || fds2 != fds+1 {
		t.Errorf("process_open_fds %v, then %v after opening one more", fds, fds2)
	}
	if v, ok := value(fams, "go_goroutines", map[string]string{}); !ok || v < 1 {
		t.Errorf("go_goroutines %v", v)
	}
}

func TestHandlerGzipAndHead(t *testing.T) {
	m := New()
	m.Accepted("http")
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("not gzipped: %v", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `herald_messages_accepted_total{source="http"} 1`) {
		t.Fatalf("gzipped body:\n%s", body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != contentType {
		t.Fatalf("Content-Type %q", ct)
	}

	rec = httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/metrics", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
	}

	for h, want := range map[string]bool{"gzip": true, "deflate, gzip;q=1.0": true, "gzip;q=0": false, "identity": false, "": false} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v", h, got)
		}
	}
}
