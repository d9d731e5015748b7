package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/event"
)

// quietWindow returns a quiet-hours value covering the current minute
// (local time, as quiet-hours uses), waiting first until the minute has at
// least 25 s left so the test can submit inside it.
func quietWindow(t *testing.T) (string, time.Time) {
	t.Helper()
	for {
		now := time.Now()
		if now.Second() < 35 && now.Minute() < 59 {
			end := now.Truncate(time.Minute).Add(time.Minute)
			return fmt.Sprintf("%d:%02d-%d:%02d", now.Hour(), now.Minute(), end.Hour(), end.Minute()), end
		}
		time.Sleep(time.Second)
	}
}

func postEvent(t *testing.T, d *daemon, typ, sev, title string) {
	t.Helper()
	body := fmt.Sprintf(`{"severity":%q,"title":%q,"body":"body of %s","fields":{"type":%q}}`, sev, title, title, typ)
	code, out := httpDo(t, "POST", fmt.Sprintf("http://127.0.0.1:%d/api/v1/events", d.httpPort), body)
	if code != http.StatusAccepted {
		t.Fatalf("POST event: %d %s", code, out)
	}
}

func ofType(evs []event.Event, typ string) []event.Event {
	var out []event.Event
	for _, e := range evs {
		if e.Type() == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitEventsCond polls cond until it holds or the deadline passes.
func waitEventsCond(t *testing.T, d *daemon, what string, timeout time.Duration, cond func([]event.Event) bool) []event.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := d.events()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; events: %v\ndaemon log:\n%s", timeout, what, titlesOf(evs), d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func titlesOf(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Title
	}
	return out
}

// TestNoiseAcrossCrashes: a flood of identical warnings reaches the file
// target as one event plus one summary, a quiet night as one digest, errors
// at once, collected jobs as one digest at its time — with the daemon
// SIGKILLed twice while events are counted and held. Nothing is lost,
// nothing arrives twice.
func TestNoiseAcrossCrashes(t *testing.T) {
	window, windowEnd := quietWindow(t)
	d := newDaemon(t, `file: events
	path %[1]s/events.jsonl

matcher: default-matcher
	target events

noise: flood
	match-field exact:type=flood
	dedup-window 20s

noise: night
	match-field exact:type=quiet
	quiet-hours `+window+`
	quiet-bypass-severity error

noise: daily
	match-field exact:type=bacula
	digest `+windowEnd.Format("15:04")+`
`)
	d.start()
	postEvent(t, d, "flood", "warning", "disk almost full")
	waitEventsCond(t, d, "the first flood event", 10*time.Second, func(evs []event.Event) bool { return len(ofType(evs, "flood")) == 1 })
	for i := range 4 {
		postEvent(t, d, "quiet", "info", fmt.Sprintf("night job %d ok", i))
	}
	postEvent(t, d, "quiet", "error", "night job failed")
	for i := range 3 {
		postEvent(t, d, "bacula", "info", fmt.Sprintf("bacula job %d OK", i))
	}
	for range 5 {
		postEvent(t, d, "flood", "warning", "disk almost full")
	}
	d.kill() // some of these may still be in the spool: decided after the restart
	d.start()
	for range 4 {
		postEvent(t, d, "flood", "warning", "disk almost full")
	}
	waitEventsCond(t, d, "the quiet error (bypass)", 10*time.Second, func(evs []event.Event) bool {
		return len(ofType(evs, "quiet")) == 1 && ofType(evs, "quiet")[0].Title == "night job failed"
	})
	// Everything was decided on (the history says so) before the second
	// crash: held and counted state is on disk only.
	waitHistory(t, d, 18)
	if n := len(ofType(d.events(), "flood")); n != 1 {
		t.Fatalf("%d flood events delivered inside the window, want 1", n)
	}
	d.kill()
	d.start()
	// A reload that drops the quiet-hours and digest rules keeps what they
	// hold: it is still released when its time comes.
	writeFile(t, filepath.Join(d.configDir, "notifications.cfg"), fmt.Sprintf(`file: events
	path %s/events.jsonl

matcher: default-matcher
	target events

noise: flood
	match-field exact:type=flood
	dedup-window 20s
`, d.stateDir), 0o644)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, "configuration reloaded")

	evs := waitEventsCond(t, d, "the dedup summary", 40*time.Second, func(evs []event.Event) bool { return len(ofType(evs, "flood")) >= 2 })
	fl := ofType(evs, "flood")
	if len(fl) != 2 || fl[1].Fields["repeated"] != "9" || fl[1].Severity != event.Warning || !strings.Contains(fl[1].Title, "repeated 9 times") {
		t.Fatalf("flood events: %+v", fl)
	}
	if time.Until(windowEnd) > 0 {
		if q := ofType(d.events(), "quiet"); len(q) != 1 {
			t.Fatalf("quiet events before the window ended: %v", titlesOf(q))
		}
	}
	evs = waitEventsCond(t, d, "the quiet-hours digest and the daily digest", time.Until(windowEnd)+30*time.Second, func(evs []event.Event) bool {
		return len(ofType(evs, "digest")) >= 2
	})
	dg := ofType(evs, "digest")
	if dg[0].Fields["noise-rule"] != "night" {
		dg[0], dg[1] = dg[1], dg[0]
	}
	if len(dg) != 2 || dg[0].Fields["count"] != "4" || dg[0].Fields["noise-rule"] != "night" ||
		dg[1].Fields["count"] != "3" || dg[1].Fields["noise-rule"] != "daily" || !strings.Contains(dg[1].Body, "bacula job 2 OK") {
		t.Fatalf("digests: %+v", dg)
	}
	if b := ofType(evs, "bacula"); len(b) != 0 {
		t.Fatalf("collected events delivered on their own: %v", titlesOf(b))
	}
	for i := range 4 {
		if !strings.Contains(dg[0].Body, fmt.Sprintf("night job %d ok", i)) {
			t.Fatalf("digest lacks job %d:\n%s", i, dg[0].Body)
		}
	}
	// Nothing more comes: no doubles after another restart either.
	d.stop()
	d.start()
	time.Sleep(2 * time.Second)
	evs = d.events()
	if len(ofType(evs, "flood")) != 2 || len(ofType(evs, "quiet")) != 1 || len(ofType(evs, "digest")) != 2 || len(ofType(evs, "bacula")) != 0 {
		t.Fatalf("events after the last restart: %v", titlesOf(evs))
	}

	// herald history --json lists every event with its deliveries and
	// what noise control did.
	var hist []struct {
		Event      event.Event `json:"event"`
		Deliveries []struct {
			Target, State string
		} `json:"deliveries"`
		Noise []struct{ Action, Rule string } `json:"noise"`
	}
	out := d.run("", d.herald, "history", "--json", "--type", "quiet")
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	held := 0
	for _, h := range hist {
		if len(h.Noise) == 1 && h.Noise[0].Action == "hold" && h.Noise[0].Rule == "night" {
			held++
		}
	}
	if len(hist) != 5 || held != 4 {
		t.Fatalf("history of type quiet: %d events, %d held\n%s", len(hist), held, out)
	}
	out = d.run("", d.herald, "history", "--grep", "repeated 9")
	if !strings.Contains(out, "disk almost full (repeated 9 times)") || !strings.Contains(out, "events: done") {
		t.Fatalf("herald history --grep:\n%s", out)
	}
}

// waitHistory waits until the history holds at least n events.
func waitHistory(t *testing.T, d *daemon, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, code := d.runCode("", nil, d.herald, "history", "--json")
		var hist []json.RawMessage
		if code == 0 && json.Unmarshal([]byte(out), &hist) == nil && len(hist) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history did not reach %d events within 20 s:\n%s\n%s", n, out, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits until the daemon's log contains s.
func waitLog(t *testing.T, d *daemon, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the daemon's log within 20 s:\n%s", s, d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
