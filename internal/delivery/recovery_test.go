package delivery

// Tests of what the queue does at start-up and across a crash (recovery.go).

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/target"
)

func TestDeadNotReportedBeforeCrashIsReportedAtStart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"relay": &fake{}}, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("ev1"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// The process died after writing the dead record, before OnDead ran.
	r := firstRecord(t, h, "ev1.relay")
	r.State, r.Attempts, r.LastError = StateDead, 1, "550 no"
	writeRecordFile(t, dir, r)

	h2 := newHarness(t, dir, map[string]target.Target{"relay": &fake{}}, nil)
	h2.open()
	h2.run()
	select {
	case d := <-h2.dead:
		if d.ID != "ev1.relay" || d.State != StateDead {
			t.Errorf("OnDead(%+v)", d)
		}
	case <-time.After(waitLimit):
		t.Fatal("OnDead not called at start for an unreported dead delivery")
	}
	h2.stop()
	if n := h2.deadN.Load(); n != 1 {
		t.Errorf("OnDead called %d times", n)
	}
	if r := readRecordFile(t, dir, "ev1.relay"); !r.DeadNotified {
		t.Error("report not recorded")
	}
}

func TestCrashRecovery(t *testing.T) {
	tests := []struct {
		name          string
		verifier      bool
		wasDelivered  bool
		wantCalls     int
		wantDecision  string
		wantLogAction string
	}{
		{"verified delivered", true, true, 0, "target confirms the delivery: done", "delivery interrupted by a crash was completed"},
		{"verified not delivered", true, false, 1, "target confirms it was not delivered", "delivery interrupted by a crash"},
		{"remote, cannot verify", false, false, 1, "target cannot confirm deliveries", "delivery interrupted by a crash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := &fake{}
			var tg target.Target = f
			var v *verifying
			if tc.verifier {
				v = &verifying{fake: f, delivered: func(ev *event.Event) bool { return tc.wasDelivered && ev.ID == "ev1" }}
				tg = v
			}
			targets := map[string]target.Target{"local": tg}
			h := newHarness(t, dir, targets, nil)
			q := h.open()
			if err := q.Enqueue(newEvent("ev1"), []string{"local"}); err != nil {
				t.Fatal(err)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			// The crash: the attempt was recorded in flight, then nothing.
			r := firstRecord(t, h, "ev1.local")
			r.State, r.Attempts = StateInflight, 1
			writeRecordFile(t, dir, r)

			h2 := newHarness(t, dir, targets, nil)
			q2 := h2.open()
			if v != nil && v.asked.Load() != 1 {
				t.Errorf("verifier asked %d times, want 1", v.asked.Load())
			}
			d := h2.get("ev1.local")
			last := d.History[len(d.History)-1]
			if last.Outcome != "interrupted" || !strings.HasPrefix(last.Error, tc.wantDecision) {
				t.Errorf("history %+v, want the decision %q", d.History, tc.wantDecision)
			}
			if !strings.Contains(h2.logs.String(), tc.wantLogAction) || !strings.Contains(h2.logs.String(), "delivery_id=ev1.local") {
				t.Errorf("recovery decision not logged:\n%s", h2.logs)
			}
			if disk := readRecordFile(t, dir, "ev1.local"); disk.State == StateInflight {
				t.Error("recovery decision not written to disk")
			}
			h2.run()
			if tc.wantCalls == 1 {
				if d := h2.outcome(); d.ID != "ev1.local" || d.State != StateDone || d.Attempts != 2 {
					t.Fatalf("%+v, want delivered on the second attempt", d)
				}
			} else if d.State != StateDone {
				t.Fatalf("%+v, want done without a new attempt", d)
			}
			// Synchronisation point: a later event to the same target.
			if err := q2.Enqueue(newEvent("ev2"), []string{"local"}); err != nil {
				t.Fatal(err)
			}
			if d := h2.outcome(); d.EventID != "ev2" {
				t.Fatalf("unexpected attempt %+v", d)
			}
			_, delivered := f.stats()
			if n := strings.Count(strings.Join(delivered, " "), "ev1"); n != tc.wantCalls {
				t.Errorf("ev1 delivered %d more times after the crash, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestOpenLocksTheDirectory(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, nil, nil)
	q := h.open()
	if _, err := Open(h.opt); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open = %v, want in use", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(h.opt)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenQuarantinesAndCleans(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"a": &fake{}}, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("good"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	write := func(rel, content string) {
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("deliveries/broken.a.json", "{not json")
	write("deliveries/orphan.a.json", `{"event_id":"orphan","target":"a","state":"pending"}`)
	write("deliveries/.tmp-x.a.json-123", "partial")
	write("events/.tmp-y.json-1", "partial")
	write("events/unacked.json", `{"event":{"id":"unacked","severity":"info","title":"","body":"","fields":{}}}`)
	write("events/lonely.eml", "payload without commit")
	write("events/bad.json", "{")

	h2 := newHarness(t, dir, h.targets, nil)
	q2 := h2.open()
	defer q2.Close()
	// The truncated event file and the pending record whose event is gone
	// become dead letters (with a stand-in event); a garbled record of an
	// event that is gone (a collection's leftover) owes nothing.
	l := h2.list()
	if got := ids(l); !slices.Equal(got, []string{"bad._unknown", "good.a", "orphan.a"}) {
		t.Errorf("List = %v", got)
	}
	for _, d := range l {
		if d.ID != "good.a" && d.State != StateDead {
			t.Errorf("%+v, want dead", d)
		}
	}
	if got := dirNames(t, filepath.Join(dir, quarantineDir)); !slices.Equal(got, []string{"bad.json", "broken.a.json"}) {
		t.Errorf("quarantine holds %v", got)
	}
	if got := dirNames(t, filepath.Join(dir, eventsDir)); !slices.Equal(got, []string{"bad.json", "good.json", "orphan.json"}) {
		t.Errorf("events left: %v", got)
	}
	// good.a was never attempted: the event file alone holds it.
	if got := dirNames(t, filepath.Join(dir, recordsDir)); !slices.Equal(got, []string{"bad._unknown.json", "orphan.a.json"}) {
		t.Errorf("records left: %v", got)
	}
	if !strings.Contains(h2.logs.String(), "moved unreadable queue file to quarantine") {
		t.Errorf("quarantine not logged:\n%s", h2.logs)
	}
}

// probe is a target that looks at its own delivery record on disk while
// Deliver runs.
type probe struct {
	dir  string
	seen chan *record
}

func (p *probe) Deliver(ctx context.Context, ev *event.Event) error {
	r, err := readRecord(filepath.Join(p.dir, recordsDir, ev.ID+".p.json"), ev.ID+".p")
	if err != nil {
		return target.Permanent(err)
	}
	p.seen <- r
	return nil
}

func TestAttemptIsRecordedBeforeItIsMade(t *testing.T) {
	dir := t.TempDir()
	p := &probe{dir: dir, seen: make(chan *record, 1)}
	h := newHarness(t, dir, map[string]target.Target{"p": p}, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"p"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-p.seen:
		if r.State != StateInflight || r.Attempts != 1 {
			t.Errorf("during Deliver the record on disk is %s with %d attempts, want inflight with 1", r.State, r.Attempts)
		}
	case <-time.After(waitLimit):
		t.Fatal("target not called")
	}
	if d := h.outcome(); d.State != StateDone {
		t.Fatalf("%+v", d)
	}
	h.stop()
	if r := readRecordFile(t, dir, "ev1.p"); r.State != StateDone {
		t.Errorf("after the attempt the record on disk is %s, want done", r.State)
	}
}
