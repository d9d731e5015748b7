package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"herald/internal/event"
)

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue scrapes /metrics, parses it with Prometheus' own text parser
// and returns the value of the sample with the given labels (0 if absent).
func metricValue(t *testing.T, base, name string, labels map[string]string) float64 {
	t.Helper()
	_, body := httpDo(t, "GET", base+"/metrics", "")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	fam := fams[name]
	if fam == nil {
		return 0
	}
next:
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// The HTTP API on loopback: events and Uptime Kuma pushes go through the
// spool to the targets; /metrics parses and its counters move as mail
// flows; herald status summarises the same.
func TestHTTPAPIAndMetrics(t *testing.T) {
	d := newDaemon(t, fileOnly+"\nheartbeat: kuma\n\tperiod 26h\n")
	writeFile(t, d.configDir+"/notifications-priv.cfg", "heartbeat: kuma\n\tpush-token s3cr3t-kuma-token\n", 0o600)
	d.start()
	base := fmt.Sprintf("http://127.0.0.1:%d", d.httpPort)

	code, body := httpDo(t, "POST", base+"/api/v1/events",
		`{"severity":"error","title":"zpool degraded","body":"tank","fields":{"type":"zfs","pool":"tank"}}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"id"`) {
		t.Fatalf("POST /api/v1/events: %d %s", code, body)
	}
	ev := d.waitEvent("zpool degraded")
	if ev.Severity != event.Error || ev.Fields["pool"] != "tank" || ev.Fields["type"] != "zfs" {
		t.Fatalf("event %+v", ev)
	}
	if code, body := httpDo(t, "POST", base+"/api/v1/events", `{"severity":"fatal"}`); code != http.StatusBadRequest {
		t.Fatalf("bad event: %d %s", code, body)
	}
	code, body = httpDo(t, "GET", base+"/api/push/s3cr3t-kuma-token?status=down&msg=Backup_failed", "")
	if code != http.StatusOK || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("push: %d %s", code, body)
	}
	push := d.waitEvent("Backup_failed")
	if push.Severity != event.Error || push.Fields["type"] != "push" || push.Fields["status"] != "down" {
		t.Fatalf("push event %+v", push)
	}
	if strings.Contains(d.log(), "s3cr3t-kuma-token") || strings.Contains(fmt.Sprint(push.Fields), "s3cr3t-kuma-token") {
		t.Fatal("the push token leaked into the log or the event")
	}

	before := metricValue(t, base, "herald_messages_accepted_total", map[string]string{"source": "smtp"})
	delivered := metricValue(t, base, "herald_deliveries_total", map[string]string{"target": "events", "outcome": "delivered"})
	swaks := needTool(t, "swaks")
	d.run("", swaks, "--server", "127.0.0.1", "--port", fmt.Sprint(d.port), "--to", "root@localhost",
		"--header", "Subject: counted", "--body", "x")
	d.waitEvent("counted")
	waitFor(t, "the counters to move", 20*time.Second, func() bool {
		return metricValue(t, base, "herald_messages_accepted_total", map[string]string{"source": "smtp"}) == before+1 &&
			metricValue(t, base, "herald_deliveries_total", map[string]string{"target": "events", "outcome": "delivered"}) >= delivered+1
	})
	if v := metricValue(t, base, "herald_events_total", map[string]string{"type": "zfs", "severity": "error"}); v != 1 {
		t.Errorf("herald_events_total{type=zfs,severity=error} = %v", v)
	}
	if v := metricValue(t, base, "herald_messages_accepted_total", map[string]string{"source": "http"}); v != 2 {
		t.Errorf("accepted over http = %v, want 2", v)
	}
	if code, _ := httpDo(t, "GET", base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	out := d.run("", d.herald, "status")
	for _, want := range []string{"healthy", "accepted", "smtp: ", "deliveries", "events delivered"} {
		if !strings.Contains(out, want) {
			t.Errorf("herald status lacks %q:\n%s", want, out)
		}
	}
}
