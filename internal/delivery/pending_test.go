package delivery

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/safeio"
	"herald/internal/target"
)

// countWrites counts the durable writes (ops the journal applies) made
// while fn runs, by file name: the journal's records, whether the file is
// then applied or held (safeio.Op.Held).
func countWrites(t *testing.T, h *harness, fn func()) map[string]int {
	t.Helper()
	var mu sync.Mutex
	got := map[string]int{}
	h.setFail(func(s safeio.Step, path string) error {
		if s == safeio.StepWrite {
			mu.Lock()
			got[filepath.Base(path)]++
			mu.Unlock()
		}
		return nil
	})
	defer h.setFail(nil)
	fn()
	mu.Lock()
	defer mu.Unlock()
	return got
}

// Enqueue commits an event for N targets with one durable write (a small
// mail inside the event file; a big one its own file first, then the event
// file that commits it), and writes nothing when everything asked for is
// already queued.
func TestEnqueueIsOneDurableWrite(t *testing.T) {
	names := []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}
	mailEv := newEvent("ev2")
	mailEv.Mail = &event.Mail{Raw: []byte("Subject: x\n\nbody\n"), From: "root@h", Recipients: []string{"root"}}
	bigEv := newEvent("ev3")
	bigEv.Mail = &event.Mail{Raw: bigMail("ev3"), From: "root@h", Recipients: []string{"root"}}
	tests := []struct {
		name string
		ev   *event.Event
		want map[string]int
	}{
		{"event", newEvent("ev1"), map[string]int{"ev1.json": 1}},
		{"mail", mailEv, map[string]int{"ev2.json": 1}},
		{"big mail", bigEv, map[string]int{"ev3.eml": 1, "ev3.json": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHarness(t, dir, nil, nil)
			q := h.open()
			defer q.Close()
			var err error
			got := countWrites(t, h, func() { err = q.Enqueue(tc.ev, names) })
			if err != nil {
				t.Fatal(err)
			}
			if !maps(got, tc.want) {
				t.Errorf("Enqueue for %d targets wrote %v, want %v", len(names), got, tc.want)
			}
			if l := h.list(); len(l) != len(names) {
				t.Errorf("%d deliveries queued, want %d", len(l), len(names))
			}
			if recs := dirNames(t, filepath.Join(dir, recordsDir)); len(recs) != 0 {
				t.Errorf("record files before any attempt: %v", recs)
			}
			got = countWrites(t, h, func() { err = q.Enqueue(tc.ev, names[:3]) })
			if err != nil || len(got) != 0 {
				t.Errorf("Enqueue of deliveries already queued wrote %v (error %v), want nothing", got, err)
			}
		})
	}
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Targets added to a queued event are committed by rewriting its event file
// (never its mail), survive a restart with their own creation time, and
// every delivery happens exactly once.
func TestEnqueueAddsTargetsLater(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	targets := map[string]target.Target{"a": f, "b": f, "c": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	ev := newEvent("ev1")
	ev.Mail = &event.Mail{Raw: []byte("Subject: x\n\nbody\n"), From: "root@h", Recipients: []string{"root"}}
	if err := q.Enqueue(ev, []string{"b", "a"}); err != nil {
		t.Fatal(err)
	}
	t0 := h.clock.Now()
	h.clock.Advance(time.Minute)
	// The spool may hand over a different copy of the event: the stored one
	// is kept.
	again := newEvent("ev1")
	again.Title = "changed"
	again.Mail = &event.Mail{Raw: []byte("other bytes"), From: "x@y"}
	var err error
	got := countWrites(t, h, func() { err = q.Enqueue(again, []string{"c", "b"}) })
	if err != nil {
		t.Fatal(err)
	}
	if !maps(got, map[string]int{"ev1.json": 1}) {
		t.Errorf("adding a target wrote %v, want only ev1.json once", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	h2 := newHarness(t, dir, targets, nil)
	h2.clock.Set(t0.Add(time.Minute))
	q2 := h2.open()
	l := h2.list()
	if got := ids(l); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev1.c"}) {
		t.Fatalf("after a restart: %v", got)
	}
	for _, d := range l {
		want := t0
		if d.Target == "c" {
			want = t0.Add(time.Minute)
		}
		if d.State != StatePending || d.Attempts != 0 || !d.Created.Equal(want) || !d.NextAttempt.Equal(want) {
			t.Errorf("%+v, want pending since %v", d, want)
		}
	}
	_, stored, err := q2.Get("ev1.c")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Title != ev.Title || string(stored.Mail.Raw) != string(ev.Mail.Raw) {
		t.Errorf("stored event changed: %q, %q", stored.Title, stored.Mail.Raw)
	}
	h2.run()
	for range 3 {
		if d := h2.outcome(); d.State != StateDone {
			t.Fatalf("%+v", d)
		}
	}
	// Enqueued again after delivery: nothing new.
	if err := q2.Enqueue(ev, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := q2.Enqueue(newEvent("ev2"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if d := h2.outcome(); d.EventID != "ev2" {
		t.Fatalf("unexpected attempt %+v", d)
	}
	if calls, delivered := f.stats(); calls != 4 || strings.Count(strings.Join(delivered, " "), "ev1") != 3 {
		t.Errorf("%d calls, delivered %v; want ev1 three times and ev2 once", calls, delivered)
	}
}

// A process that dies right after Enqueue returned (the event file is all
// there is) finds every target pending at the next start, and delivers
// each once.
func TestCrashAfterEnqueueLeavesAllPending(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	targets := map[string]target.Target{"a": f, "b": f, "c": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("ev1"), []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	created := h.clock.Now()
	if err := q.Close(); err != nil { // the crash: the lock goes, nothing else
		t.Fatal(err)
	}
	h2 := newHarness(t, dir, targets, nil)
	h2.clock.Advance(3 * time.Hour)
	q2 := h2.open()
	for _, id := range []string{"ev1.a", "ev1.b", "ev1.c"} {
		d := h2.get(id)
		if d.State != StatePending || d.Attempts != 0 || !d.Created.Equal(created) || !d.NextAttempt.Equal(created) {
			t.Errorf("%+v, want pending since %v, never attempted", d, created)
		}
	}
	if s := q2.Stats(); s.Pending != 3 || s.OldestPending != 3*time.Hour {
		t.Errorf("Stats = %+v", s)
	}
	h2.run()
	for range 3 {
		if d := h2.outcome(); d.State != StateDone || d.Attempts != 1 {
			t.Fatalf("%+v", d)
		}
	}
	h2.stop()
	if calls, _ := f.stats(); calls != 3 {
		t.Errorf("%d deliveries, want 3", calls)
	}
	for _, id := range []string{"ev1.a", "ev1.b", "ev1.c"} {
		if r := readRecordFile(t, dir, id); r.State != StateDone {
			t.Errorf("%s on disk is %s", id, r.State)
		}
	}
}

// Dropping a delivery that was never attempted (no record) is durable: it
// does not come back after a restart, whether siblings remain or not, and
// neither does a dropped delivery that has a record and is listed.
func TestDropBeforeFirstAttemptSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	f := &fake{script: []error{errTemp}}
	targets := map[string]target.Target{"a": f, "b": &fake{}, "c": &fake{}}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("ev1"), []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(newEvent("ev2"), []string{"b"}); err != nil {
		t.Fatal(err)
	}
	// ev2.b: the last delivery of its event, never attempted.
	if err := q.Drop("ev2.b"); err != nil {
		t.Fatal(err)
	}
	h.writeOut()
	if got := dirNames(t, filepath.Join(dir, eventsDir)); !slices.Equal(got, []string{"ev1.json"}) {
		t.Errorf("events after dropping ev2's only delivery: %v", got)
	}
	// ev1.b: never attempted, siblings remain.
	if err := q.Drop("ev1.b"); err != nil {
		t.Fatal(err)
	}
	h.writeOut()
	if got := listedNames(t, dir, "ev1"); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("ev1 lists %v after dropping b", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, dir, targets, nil)
	q2 := h2.open()
	if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.a", "ev1.c"}) {
		t.Fatalf("after a restart: %v", got)
	}
	// ev1.a: attempted once (a record, pending again) and listed.
	h2.run()
	seen := map[string]Delivery{}
	for range 2 {
		d := h2.outcome()
		seen[d.ID] = d
	}
	if d := seen["ev1.a"]; d.State != StatePending || d.Attempts != 1 {
		t.Fatalf("ev1.a after one failure: %+v", d)
	}
	if err := q2.Drop("ev1.a"); err != nil {
		t.Fatal(err)
	}
	h2.stop()
	h3 := newHarness(t, dir, targets, nil)
	h3.open()
	if got := ids(h3.list()); !slices.Equal(got, []string{"ev1.c"}) {
		t.Fatalf("after dropping a recorded delivery and a restart: %v", got)
	}
	if got := dirNames(t, filepath.Join(dir, recordsDir)); !slices.Equal(got, []string{"ev1.c.json"}) {
		t.Errorf("records: %v", got)
	}
	if calls, _ := f.stats(); calls != 1 {
		t.Errorf("dropped target called %d times, want 1", calls)
	}
	if err := h3.q.Close(); err != nil {
		t.Fatal(err)
	}
}

// A Drop whose list rewrite fails returns the error and loses nothing on
// disk: after a restart the delivery is still there.
func TestDropRewriteFailure(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]target.Target{"a": &fake{}, "b": &fake{}}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("ev1"), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected failure")
	h.setFail(func(s safeio.Step, path string) error {
		if s == safeio.StepSync && filepath.Base(path) == "ev1.json" {
			return injected
		}
		return nil
	})
	err := q.Drop("ev1.a")
	h.setFail(nil)
	if !errors.Is(err, injected) {
		t.Fatalf("Drop = %v, want the injected failure", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, dir, targets, nil)
	q2 := h2.open()
	defer q2.Close()
	if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b"}) {
		t.Errorf("after a failed Drop and a restart: %v", got)
	}
}

// An event file written before the target list existed loads with the
// deliveries its records name, and targets added to it later are listed.
func TestOldFormatEventFile(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{eventsDir, recordsDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The old layout, as the previous version wrote it.
	evJSON, err := json.Marshal(newEvent("old"))
	if err != nil {
		t.Fatal(err)
	}
	oldFile := []byte(`{"event":` + string(evJSON) + `}`)
	if err := os.WriteFile(filepath.Join(dir, eventsDir, "old.json"), oldFile, 0o600); err != nil {
		t.Fatal(err)
	}
	created := newClock().Now().Add(-time.Hour)
	writeRecordFile(t, dir, &record{EventID: "old", Target: "a", State: StatePending, Created: created, NextAttempt: created})
	writeRecordFile(t, dir, &record{EventID: "old", Target: "b", State: StateDone, Attempts: 1, Created: created, NextAttempt: created, Finished: created})
	// An old-format event without records was never acknowledged.
	if err := os.WriteFile(filepath.Join(dir, eventsDir, "unacked.json"), []byte(`{"event":{"id":"unacked","severity":"info","title":"","body":"","fields":{}}}`), 0o600); err != nil {
		t.Fatal(err)
	}

	f := &fake{}
	targets := map[string]target.Target{"a": f, "b": f, "c": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	if got := ids(h.list()); !slices.Equal(got, []string{"old.a", "old.b"}) {
		t.Fatalf("old-format queue loads %v", got)
	}
	if d := h.get("old.b"); d.State != StateDone {
		t.Errorf("old.b: %+v", d)
	}
	if got := dirNames(t, filepath.Join(dir, eventsDir)); !slices.Equal(got, []string{"old.json"}) {
		t.Errorf("events: %v", got)
	}
	if err := q.Enqueue(newEvent("old"), []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	h.writeOut()
	if got := listedNames(t, dir, "old"); !slices.Equal(got, []string{"c"}) {
		t.Errorf("old event file lists %v after adding c, want [c]", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, dir, targets, nil)
	h2.open()
	h2.run()
	for range 2 {
		if d := h2.outcome(); d.State != StateDone || d.Target == "b" {
			t.Fatalf("%+v", d)
		}
	}
	if err := h2.q.Enqueue(newEvent("ev2"), []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if d := h2.outcome(); d.EventID != "ev2" {
		t.Fatalf("unexpected attempt %+v", d)
	}
	if _, delivered := f.stats(); !slices.Equal(delivered, []string{"old", "old", "ev2"}) {
		t.Errorf("delivered %v", delivered)
	}
}

// queuedForAB leaves a closed queue in a fresh directory holding event ev1
// for targets a and b (one shared fake), with ev1.a recorded as delivered when
// aDone, else both never attempted.
func queuedForAB(t *testing.T, aDone bool) (string, map[string]target.Target, *fake) {
	t.Helper()
	dir := t.TempDir()
	f := &fake{}
	targets := map[string]target.Target{"a": f, "b": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("ev1"), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if aDone {
		r := firstRecord(t, h, "ev1.a")
		r.State, r.Attempts, r.Finished = StateDone, 1, h.clock.Now()
		writeRecordFile(t, dir, r)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, targets, f
}

// Collection never removes an event file that still implies a pending
// delivery, and takes a collected target off the list so that it does not
// come back as pending after a restart. A crash between removing a
// collected event's file and its records leaves done records that Open
// removes.
func TestCollectionKeepsImpliedPending(t *testing.T) {
	// ev1.a delivered (its record says so); ev1.b never attempted.
	dir, targets, f := queuedForAB(t, true)
	h2 := newHarness(t, dir, targets, nil)
	q2 := h2.open()
	if d := h2.get("ev1.a"); d.State != StateDone {
		t.Fatalf("ev1.a: %+v", d)
	}
	h2.clock.Advance(2 * time.Hour)
	q2.gc()
	h2.writeOut()
	if got := dirNames(t, filepath.Join(dir, eventsDir)); !slices.Equal(got, []string{"ev1.json"}) {
		t.Fatalf("events after collection: %v", got)
	}
	if got := dirNames(t, filepath.Join(dir, recordsDir)); len(got) != 0 {
		t.Errorf("records after collection: %v", got)
	}
	if got := listedNames(t, dir, "ev1"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("ev1 lists %v after collecting a", got)
	}
	if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.b"}) {
		t.Errorf("in memory: %v", got)
	}
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
	h3 := newHarness(t, dir, targets, nil)
	q3 := h3.open()
	if got := ids(h3.list()); !slices.Equal(got, []string{"ev1.b"}) {
		t.Fatalf("after a restart: %v (a collected delivery came back?)", got)
	}
	h3.run()
	if d := h3.outcome(); d.ID != "ev1.b" || d.State != StateDone {
		t.Fatalf("%+v", d)
	}
	h3.clock.Advance(2 * time.Hour)
	q3.gc()
	for _, sub := range []string{eventsDir, recordsDir} {
		if got := dirNames(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s after collecting everything: %v", sub, got)
		}
	}
	h3.stop()
	if _, delivered := f.stats(); !slices.Equal(delivered, []string{"ev1"}) {
		t.Errorf("delivered %v, want ev1 once (to b)", delivered)
	}

	// The crash inside a collection: the event file is gone, its done
	// record not yet.
	finished := h3.clock.Now()
	writeRecordFile(t, dir, &record{EventID: "ev9", Target: "a", State: StateDone, Attempts: 1, Created: finished, NextAttempt: finished, Finished: finished})
	h4 := newHarness(t, dir, targets, nil)
	q4 := h4.open()
	defer q4.Close()
	if got := dirNames(t, filepath.Join(dir, recordsDir)); len(got) != 0 {
		t.Errorf("records left by an interrupted collection: %v", got)
	}
	if got := dirNames(t, filepath.Join(dir, quarantineDir)); len(got) != 0 {
		t.Errorf("quarantined: %v", got)
	}
	if l := h4.list(); len(l) != 0 {
		t.Errorf("List = %+v", l)
	}
}

// If a collection cannot take a target off its event's list, the done
// record stays, so the delivery comes back done, never pending.
func TestCollectionRewriteFailureKeepsRecord(t *testing.T) {
	dir, targets, _ := queuedForAB(t, true)
	h2 := newHarness(t, dir, targets, nil)
	q2 := h2.open()
	h2.clock.Advance(2 * time.Hour)
	h2.setFail(func(s safeio.Step, path string) error {
		if s == safeio.StepSync && filepath.Base(path) == "ev1.json" {
			return errors.New("injected failure")
		}
		return nil
	})
	q2.gc()
	h2.setFail(nil)
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
	h3 := newHarness(t, dir, targets, nil)
	q3 := h3.open()
	defer q3.Close()
	if d := h3.get("ev1.a"); d.State != StateDone {
		t.Errorf("ev1.a after a failed collection and a restart: %+v, want done", d)
	}
	if d := h3.get("ev1.b"); d.State != StatePending {
		t.Errorf("ev1.b: %+v", d)
	}
}

// Event files with a damaged target list are quarantined like any other
// unreadable file, and their deliveries become dead letters saying so: to
// the targets what is left of the list names, or to "_unknown".
func TestBadTargetListBecomesDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		list string
		want []string
	}{
		{`[{"name":"../x","created":"2025-05-23T12:00:00Z"}]`, []string{"ev1._unknown"}},
		{`[{"name":"a"}]`, []string{"ev1._unknown"}},
		{`[{"name":"b","created":"2025-05-23T12:00:00Z"},{"name":"a","created":"2025-05-23T12:00:00Z"}]`, []string{"ev1.a", "ev1.b"}},
		{`[{"name":"a","created":"2025-05-23T12:00:00Z"},{"name":"a","created":"2025-05-23T12:00:00Z"}]`, []string{"ev1.a"}},
		{`"a"`, []string{"ev1._unknown"}},
	} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, eventsDir), 0o700); err != nil {
			t.Fatal(err)
		}
		content := `{"event":{"id":"ev1","severity":"info","title":"","body":"","fields":{}},"targets":` + tc.list + `}`
		if err := os.WriteFile(filepath.Join(dir, eventsDir, "ev1.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, dir, nil, nil)
		q := h.open()
		l := h.list()
		if got := ids(l); !slices.Equal(got, tc.want) {
			t.Errorf("list %s: loaded %v, want %v", tc.list, got, tc.want)
		}
		for _, d := range l {
			if d.State != StateDead || !strings.Contains(d.LastError, "quarantine/ev1.json") {
				t.Errorf("list %s: %+v, want dead saying where the file went", tc.list, d)
			}
		}
		if got := dirNames(t, filepath.Join(dir, quarantineDir)); !slices.Equal(got, []string{"ev1.json"}) {
			t.Errorf("list %s: quarantine holds %v", tc.list, got)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A listed delivery whose record is unreadable is quarantined and becomes a
// dead letter saying so: it must not come back as never attempted (it may
// have been delivered), neither now nor after the next start, nor vanish.
func TestUnreadableRecordOfListedTarget(t *testing.T) {
	dir, targets, _ := queuedForAB(t, false)
	if err := os.WriteFile(filepath.Join(dir, recordsDir, "ev1.a.json"), []byte("{damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		h2 := newHarness(t, dir, targets, nil)
		q2 := h2.open()
		if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b"}) {
			t.Errorf("start %d: %v, want ev1.a (dead) and ev1.b", i+1, got)
		}
		if d := h2.get("ev1.a"); d.State != StateDead || !strings.Contains(d.LastError, "delivery record was unreadable") {
			t.Errorf("start %d: ev1.a %+v, want a dead letter saying why", i+1, d)
		}
		if d := h2.get("ev1.b"); d.State != StatePending {
			t.Errorf("start %d: ev1.b %+v", i+1, d)
		}
		if err := q2.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirNames(t, filepath.Join(dir, quarantineDir)); !slices.Equal(got, []string{"ev1.a.json"}) {
		t.Errorf("quarantine holds %v", got)
	}
	if got := listedNames(t, dir, "ev1"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("ev1 lists %v", got)
	}
}
