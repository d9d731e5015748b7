package packaging

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The example Prometheus rules and Alertmanager route shipped for fleets
// (prometheus/, alertmanager/) are checked by the tools that will read
// them: promtool checks the rules and runs their unit tests, amtool checks
// the configuration and where it routes herald's labels.
func TestFleetExamples(t *testing.T) {
	promtool, amtool := tool(t, "promtool"), tool(t, "amtool")
	run := func(dir, bin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s%s", bin, strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return string(out) // stdout only: amtool warns on stderr
	}
	run("prometheus", promtool, "check", "rules", "herald-rules.yml")
	run("prometheus", promtool, "test", "rules", "herald-rules.test.yml")
	run("alertmanager", amtool, "check-config", "herald-route.yml")
	for _, tc := range []struct {
		labels []string
		want   string
	}{
		{[]string{"alertname=heartbeat", "hostname=pve1", "monitor=backup", "severity=error"}, "ops-pager"},
		{[]string{"alertname=HeraldDown", "hostname=pve1", "severity=error"}, "ops-pager"},
		{[]string{"alertname=zfs", "hostname=pve1", "severity=error"}, "ops-pager"},
		{[]string{"alertname=vzdump", "hostname=pve1", "severity=info"}, "ops-mail"},
		{[]string{"alertname=smart", "hostname=pve1", "severity=warning"}, "ops-mail"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file", "herald-route.yml"}, tc.labels...)
		if got := strings.TrimSpace(run("alertmanager", amtool, args...)); got != tc.want {
			t.Errorf("%v routes to %q, want %q", tc.labels, got, tc.want)
		}
	}
}
