package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/monitor"
)

// pushToken is the Kuma push token of the heartbeats under test.
const pushToken = "tok-e2e-4711-abc"

// withHeartbeats returns a daemon whose events go to the file target and
// whose notifications.cfg adds sections; priv is the private file.
func withHeartbeats(t *testing.T, sections, priv string) *daemon {
	t.Helper()
	d := newDaemon(t, fileOnly+"\n"+sections)
	if priv != "" {
		writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), priv, 0o600)
	}
	return d
}

// heartbeatEvents returns the heartbeat events of monitor with status.
func heartbeatEvents(d *daemon, monitor, status string) []event.Event {
	var out []event.Event
	for _, ev := range d.events() {
		if ev.Fields["type"] == "heartbeat" && ev.Fields["monitor"] == monitor && ev.Fields["status"] == status {
			out = append(out, ev)
		}
	}
	return out
}

// monitor returns what `herald monitors --json` says of the monitor name.
func (d *daemon) monitor(name string) monitor.Status {
	d.t.Helper()
	var mons []monitor.Status
	if err := json.Unmarshal([]byte(d.run("", d.herald, "monitors", "--json")), &mons); err != nil {
		d.t.Fatal(err)
	}
	for _, m := range mons {
		if m.Name == name {
			return m
		}
	}
	d.t.Fatalf("herald monitors --json has no %s", name)
	return monitor.Status{}
}

func (d *daemon) notify(typ, sev, title string) {
	d.t.Helper()
	d.run("", d.herald, "notify", "--type", typ, "--severity", sev, "--title", title)
}

// hookScript is the seed runbook's vzdump hook, unchanged but for the URL.
const hookScript = `#!/bin/bash
# /var/lib/vz/snippets/vzdump-uptime-kuma-hook.sh
KUMA_PUSH_URL=%s
case "$1" in
  job-end)
    if [ "$2" = "OK" ]; then
      curl -fsS -X POST "${KUMA_PUSH_URL}?status=up&msg=Backup_OK" >/dev/null
    fi
    ;;
esac
`

// The contract end to end: herald notify successes and failures, the
// runbook's hook script with curl against the push endpoint, a bsmtp mail
// selected by its subject, a missed deadline raising exactly one down event,
// a success raising the up event, N failures, herald monitors (--json,
// pause, resume), /api/v1/monitors, the metrics and herald explain.
func TestHeartbeats(t *testing.T) {
	curl := needTool(t, "curl")
	bsmtp := needTool(t, "bsmtp")
	d := withHeartbeats(t, `heartbeat: hb-job
	match-field exact:type=job1
	period 3s
	grace 1s

heartbeat: hb-push
	period 3s
	grace 1s
	comment the vzdump hook pushes here

heartbeat: hb-fail
	match-field exact:type=job2
	period 1h
	alert-after-failures 2

heartbeat: hb-bacula
	match-field regex:subject=^Bacula: Backup OK
	period 1h

heartbeat: hb-idle
	match-field exact:type=never
	period 1h
`, "heartbeat: hb-push\n\tpush-token "+pushToken+"\n")
	d.start()
	base := fmt.Sprintf("http://127.0.0.1:%d", d.httpPort)
	hook := filepath.Join(t.TempDir(), "vzdump-hook.sh")
	writeFile(t, hook, fmt.Sprintf(hookScript, base+"/api/push/"+pushToken), 0o755)

	d.notify("job1", "info", "job1 ok")
	d.run("", hook, "job-end", "OK")
	d.run("", hook, "job-end", "FAIL") // no push, as in the runbook
	d.run("", hook, "backup-start", "x")
	d.waitEvent("Backup_OK")

	// An unknown token: curl -f fails on Kuma's 404 and nothing is spooled.
	before := len(d.events())
	if out, code := d.runCode("", nil, curl, "-fsS", "-X", "POST", base+"/api/push/not-a-known-token?status=up&msg=x"); code == 0 {
		t.Fatalf("curl -f succeeded against an unknown token: %s", out)
	}
	code, body := httpDo(t, "GET", base+"/api/push/not-a-known-token?status=up", "")
	if code != http.StatusNotFound || !strings.Contains(body, "Monitor not found or not active.") {
		t.Fatalf("unknown token: %d %s", code, body)
	}

	// A Bacula mail over SMTP from the real bsmtp, selected by its subject.
	subj := "Bacula: Backup OK of client-fd Incremental"
	d.run("Job: nightly\nTermination: Backup OK\n", bsmtp, "-h", fmt.Sprintf("127.0.0.1:%d", d.port),
		"-f", "(Bacula) <bacula@example.org>", "-s", subj, "root@localhost")
	d.waitEvent(subj)

	// Nothing more comes: both go down, once, as errors with reason missed.
	waitFor(t, "hb-job and hb-push down", 15*time.Second, func() bool {
		return len(heartbeatEvents(d, "hb-job", "down")) > 0 && len(heartbeatEvents(d, "hb-push", "down")) > 0
	})
	if len(d.events()) <= before {
		t.Fatal("no events after the unknown push")
	}
	for _, ev := range d.events() {
		if ev.Fields["type"] == "push" && ev.Fields["monitor"] != "hb-push" {
			t.Fatalf("a push event not of hb-push: %+v", ev)
		}
	}
	down := heartbeatEvents(d, "hb-job", "down")[0]
	if down.Severity != event.Error || down.Fields["reason"] != "missed" || down.Fields["last-success"] == "never" ||
		down.Fields["hostname"] != "testhost" {
		t.Fatalf("down event %+v", down)
	}
	time.Sleep(4 * time.Second) // more periods pass
	if n, m := len(heartbeatEvents(d, "hb-job", "down")), len(heartbeatEvents(d, "hb-push", "down")); n != 1 || m != 1 {
		t.Fatalf("down events: hb-job %d, hb-push %d, want one each", n, m)
	}

	// herald monitors, its JSON, /api/v1/monitors and the metrics agree.
	var mons []map[string]any
	if err := json.Unmarshal([]byte(d.run("", d.herald, "monitors", "--json")), &mons); err != nil {
		t.Fatal(err)
	}
	states := map[string]any{}
	for _, m := range mons {
		states[m["name"].(string)] = m["state"]
	}
	want := map[string]any{"hb-job": "down", "hb-push": "down", "hb-fail": "new", "hb-bacula": "up", "hb-idle": "new"}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("herald monitors --json states %v, want %v", states, want)
	}
	code, body = httpDo(t, "GET", base+"/api/v1/monitors", "")
	if code != http.StatusOK || !strings.Contains(body, `"name":"hb-bacula"`) {
		t.Fatalf("/api/v1/monitors: %d %s", code, body)
	}
	table := d.run("", d.herald, "monitors")
	for _, w := range []string{"NAME", "hb-job", "down (missed)", "the vzdump hook pushes here"} {
		if !strings.Contains(table, w) {
			t.Errorf("herald monitors lacks %q:\n%s", w, table)
		}
	}
	if v := metricValue(t, base, "herald_monitor_up", map[string]string{"monitor": "hb-bacula"}); v != 1 {
		t.Errorf("herald_monitor_up{hb-bacula} = %v", v)
	}
	if v := metricValue(t, base, "herald_monitor_up", map[string]string{"monitor": "hb-job"}); v != 0 {
		t.Errorf("herald_monitor_up{hb-job} = %v", v)
	}
	if v := metricValue(t, base, "herald_monitor_last_success_timestamp_seconds", map[string]string{"monitor": "hb-bacula"}); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success of hb-bacula = %v", v)
	}

	// Recovery: one up event each, severity info.
	d.notify("job1", "notice", "job1 ok again")
	d.run("", hook, "job-end", "OK")
	waitFor(t, "hb-job and hb-push up", 15*time.Second, func() bool {
		return len(heartbeatEvents(d, "hb-job", "up")) == 1 && len(heartbeatEvents(d, "hb-push", "up")) == 1
	})
	if up := heartbeatEvents(d, "hb-job", "up")[0]; up.Severity != event.Info {
		t.Fatalf("up event %+v", up)
	}

	// alert-after-failures 2: one failure is no alarm, the second is.
	d.notify("job2", "error", "job2 failed once")
	d.waitEvent("job2 failed once")
	// The engine raises a down event only with the state change, in the
	// same write: once it has counted the failure and stayed up, none is
	// on its way.
	waitFor(t, "hb-fail's first failure counted", 15*time.Second, func() bool { return d.monitor("hb-fail").Failures == 1 })
	if st := d.monitor("hb-fail"); st.State == monitor.StateDown {
		t.Fatalf("down after one failure: %+v", st)
	}
	if n := len(heartbeatEvents(d, "hb-fail", "down")); n != 0 {
		t.Fatalf("down after one failure")
	}
	d.notify("job2", "warning", "job2 failed twice")
	waitFor(t, "hb-fail down", 15*time.Second, func() bool { return len(heartbeatEvents(d, "hb-fail", "down")) == 1 })
	if r := heartbeatEvents(d, "hb-fail", "down")[0].Fields["reason"]; r != "failed" {
		t.Fatalf("reason %q, want failed", r)
	}

	// Pause and resume through the control socket.
	if out, code := d.runCode("", nil, d.herald, "monitors", "pause", "no-such"); code == 0 {
		t.Fatalf("pausing an unknown monitor succeeded: %s", out)
	}
	d.run("", d.herald, "monitors", "pause", "hb-job")
	time.Sleep(5 * time.Second) // past its deadline
	if n := len(heartbeatEvents(d, "hb-job", "down")); n != 1 {
		t.Fatalf("a paused heartbeat went down: %d down events", n)
	}
	if !strings.Contains(d.run("", d.herald, "monitors"), "paused") {
		t.Fatal("herald monitors does not show the pause")
	}
	d.run("", d.herald, "monitors", "resume", "hb-job")
	waitFor(t, "hb-job down again after resume", 15*time.Second, func() bool { return len(heartbeatEvents(d, "hb-job", "down")) == 2 })

	// herald explain says which heartbeats an event feeds.
	evFile := filepath.Join(t.TempDir(), "ev.json")
	writeFile(t, evFile, `{"severity":"error","title":"x","fields":{"type":"job2"}}`, 0o644)
	var ex struct {
		Heartbeats []struct{ Heartbeat, Outcome, Reason string }
	}
	if err := json.Unmarshal([]byte(d.run("", d.herald, "explain", "--event", evFile)), &ex); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range ex.Heartbeats {
		got[h.Heartbeat] = h.Outcome
	}
	if got["hb-fail"] != "failure" || got["hb-job"] != "none" || got["hb-push"] != "none" {
		t.Fatalf("explain heartbeats %v", ex.Heartbeats)
	}
	if out := d.run("", d.herald, "check"); !strings.Contains(out, "5 heartbeats") {
		t.Fatalf("herald check: %s", out)
	}
	if strings.Contains(d.log(), pushToken) {
		t.Fatal("the push token is in the daemon's log")
	}
}

// SIGKILL and restart: mid-period the clock is kept (no reset, no false
// alarm); past a deadline the alarm comes right after start-up, once; a
// success spooled while herald was down counts at its own time.
func TestHeartbeatRestarts(t *testing.T) {
	d := withHeartbeats(t, `heartbeat: mid
	match-field exact:type=mid
	period 12s

heartbeat: past
	match-field exact:type=past
	period 3s

heartbeat: spooled
	match-field exact:type=spooled
	period 8s
`, "")
	d.start()
	t0 := time.Now()
	d.notify("mid", "info", "mid ok")
	d.notify("past", "info", "past ok")
	d.notify("spooled", "info", "spooled ok A")
	d.waitEvent("spooled ok A")
	d.kill()
	sleepUntil(t0.Add(3 * time.Second))
	d.notify("spooled", "info", "spooled ok B") // into the maildrop: herald is down
	// Event times have whole seconds: A's deadline is t0+7..8, B's t0+10..11.
	sleepUntil(t0.Add(8200 * time.Millisecond))
	d.start() // 'past' is 5 s overdue, 'spooled' only by A, 'mid' has about 3 s left
	waitFor(t, "past down after start-up", 10*time.Second, func() bool { return len(heartbeatEvents(d, "past", "down")) == 1 })
	d.waitEvent("spooled ok B")
	sleepUntil(t0.Add(9500 * time.Millisecond))
	if n := len(heartbeatEvents(d, "spooled", "down")); n != 0 {
		t.Fatalf("spooled went down although a success waited in the spool while herald was down")
	}
	waitFor(t, "mid down at its deadline", 10*time.Second, func() bool { return len(heartbeatEvents(d, "mid", "down")) == 1 })
	if el := time.Since(t0); el > 15*time.Second {
		t.Errorf("mid went down %v after its success: the restart reset its clock (period 12 s)", el)
	}
	waitFor(t, "spooled down after B's period", 10*time.Second, func() bool { return len(heartbeatEvents(d, "spooled", "down")) == 1 })

	// Restart again, SIGKILL and clean: no second alarm for the same outage.
	d.kill()
	d.start()
	d.stop()
	d.start()
	time.Sleep(3 * time.Second)
	for _, name := range []string{"mid", "past", "spooled"} {
		if n := len(heartbeatEvents(d, name, "down")); n != 1 {
			t.Errorf("%s: %d down events after restarts, want 1", name, n)
		}
	}
	d.notify("past", "info", "past ok again")
	waitFor(t, "past up", 10*time.Second, func() bool { return len(heartbeatEvents(d, "past", "up")) == 1 })
}

func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// A usage watch on a small tmpfs filled past its threshold: one warning,
// and an info once it is emptied below threshold minus hysteresis.
func TestUsageWatchOnTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=1000", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs needs root (make test runs as root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	d := withHeartbeats(t, fmt.Sprintf("usage: small-vol\n\tpath %s\n\tthreshold 50\n\tinterval 1s\n\thysteresis 10\n", mnt), "")
	d.start()
	usage := func(sev event.Severity) []event.Event {
		var out []event.Event
		for _, ev := range d.events() {
			if ev.Fields["type"] == "usage" && ev.Severity == sev {
				out = append(out, ev)
			}
		}
		return out
	}
	// Judged once checked: a warning comes only with the state down.
	waitFor(t, "the first usage check", 15*time.Second, func() bool { return d.monitor("small-vol").LastCheck != nil })
	if st := d.monitor("small-vol"); st.State != monitor.StateUp || len(usage(event.Warning)) != 0 {
		t.Fatalf("warning on an empty file system: %+v", st)
	}
	big := filepath.Join(mnt, "fill")
	if err := os.WriteFile(big, make([]byte, 700<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the usage warning", 15*time.Second, func() bool { return len(usage(event.Warning)) == 1 })
	w := usage(event.Warning)[0]
	if w.Fields["monitor"] != "small-vol" || w.Fields["path"] != mnt || !strings.HasPrefix(w.Fields["used-percent"], "6") &&
		!strings.HasPrefix(w.Fields["used-percent"], "7") {
		t.Fatalf("warning fields %v", w.Fields)
	}
	// 45 %: below the threshold but inside the hysteresis band.
	if err := os.Truncate(big, 460<<10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a check seeing 45 %", 15*time.Second, func() bool {
		u := d.monitor("small-vol").UsedPercent
		return u != nil && *u < 50
	})
	if st := d.monitor("small-vol"); st.State != monitor.StateDown || len(usage(event.Info)) != 0 {
		t.Fatalf("info inside the hysteresis band: %+v", st)
	}
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the info once below", 15*time.Second, func() bool { return len(usage(event.Info)) == 1 })
	if n := len(usage(event.Warning)); n != 1 {
		t.Fatalf("%d warnings, want 1", n)
	}
}

// A reload (SIGHUP) keeps the clock of an unchanged heartbeat and starts a
// new one's at the reload: no alarm for the time before it existed.
func TestHeartbeatReload(t *testing.T) {
	d := withHeartbeats(t, "heartbeat: kept\n\tmatch-field exact:type=kept\n\tperiod 6s\n", "")
	d.start()
	t0 := time.Now()
	d.notify("kept", "info", "kept ok")
	d.waitEvent("kept ok")
	sleepUntil(t0.Add(2 * time.Second))
	writeFile(t, filepath.Join(d.configDir, "notifications.cfg"), fmt.Sprintf(fileOnly, d.stateDir)+
		"\nheartbeat: kept\n\tmatch-field exact:type=kept\n\tperiod 6s\n\tcomment now with a comment\n"+
		"\nheartbeat: added\n\tmatch-field exact:type=added\n\tperiod 3s\n", 0o644)
	reloaded := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", 10*time.Second, func() bool { return strings.Contains(d.log(), "configuration reloaded") })
	waitFor(t, "kept down", 10*time.Second, func() bool { return len(heartbeatEvents(d, "kept", "down")) == 1 })
	if el := time.Since(t0); el > 8*time.Second {
		t.Errorf("kept went down %v after its success: the reload reset its clock", el)
	}
	waitFor(t, "added down", 10*time.Second, func() bool { return len(heartbeatEvents(d, "added", "down")) == 1 })
	if el := time.Since(reloaded); el < 3*time.Second {
		t.Errorf("added went down %v after the reload that created it (period 3 s)", el)
	}
}

// BenchmarkHeartbeatDeadlineToFile measures how long after its deadline a
// missed heartbeat's down event is a line in events.jsonl (the engine's
// timer, the state write, the spool, routing and the file target), for 20
// heartbeats due at the same second; it reports p50 and max.
func BenchmarkHeartbeatDeadlineToFile(b *testing.B) {
	const n = 20
	var cfg strings.Builder
	for i := range n {
		fmt.Fprintf(&cfg, "heartbeat: hb%d\n\tmatch-field exact:type=j%d\n\tperiod 3s\n\n", i, i)
	}
	d := newDaemon(b, fileOnly+"\n"+cfg.String())
	d.start()
	defer d.stop()
	fl := follow(filepath.Join(d.stateDir, "events.jsonl"))
	defer fl.close()
	base := fmt.Sprintf("http://127.0.0.1:%d", d.httpPort)
	ts := time.Now().Truncate(time.Second)
	for i := range n {
		body := fmt.Sprintf(`{"timestamp":%q,"severity":"info","title":"ok %d","fields":{"type":"j%d"}}`, ts.UTC().Format(time.RFC3339), i, i)
		req, _ := http.NewRequest("POST", base+"/api/v1/events", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("POST: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	b.ResetTimer()
	due := ts.Add(3 * time.Second)
	var lat []time.Duration
	stop := time.Now().Add(30 * time.Second)
	for i := range n {
		title := fmt.Sprintf("testhost: heartbeat hb%d is down: no success since %s", i, ts.UTC().Format(time.RFC3339))
		for {
			if at, ok := fl.at(title); ok {
				lat = append(lat, at.Sub(due))
				break
			}
			if time.Now().After(stop) {
				b.Fatalf("no down event for hb%d\n%s", i, d.log())
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 1).Microseconds())/1000, "max-ms")
}
