package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMonitorMetrics(t *testing.T) {
	m := New()
	m.SetMonitors(func() []Monitor {
		return []Monitor{
			{Name: "nightly-vzdump", Up: true, LastSuccess: time.Unix(1764640800, 0)},
			{Name: "hb-push", Up: false},
		}
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`herald_monitor_up{monitor="nightly-vzdump"} 1`,
		`herald_monitor_up{monitor="hb-push"} 0`,
		`herald_monitor_last_success_timestamp_seconds{monitor="nightly-vzdump"} 1.7646408e+09`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(string(body), `herald_monitor_last_success_timestamp_seconds{monitor="hb-push"}`) {
		t.Error("a heartbeat without a success has a last-success timestamp")
	}
	// A second registration replaces the callback instead of panicking.
	m.SetMonitors(func() []Monitor { return nil })
}
