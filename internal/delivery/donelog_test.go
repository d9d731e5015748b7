package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/safeio"
	"herald/internal/target"
)

// waitFolded waits until every delivery of event id is folded into the
// done log.
func waitFolded(t *testing.T, q *Queue, id string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		q.mu.Lock()
		es := q.byEvent[id]
		folded := len(es) > 0 && !slices.ContainsFunc(es, func(e *entry) bool { return !e.folded })
		q.mu.Unlock()
		if folded {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not folded within %v", id, waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
}

// deliverFolded queues event id for targets, waits for the n attempts
// that makes (a target already queued makes none) and then for the event
// to be folded, and returns the last outcome.
func (h *harness) deliverFolded(id string, targets []string, n int) Delivery {
	h.t.Helper()
	if err := h.q.Enqueue(newEvent(id), targets); err != nil {
		h.t.Fatal(err)
	}
	var d Delivery
	for range n {
		d = h.outcome()
	}
	waitFolded(h.t, h.q, id)
	return d
}

// doneLines reads the done log in dir.
func doneLines(t *testing.T, dir string) []doneLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, doneLogName))
	if err != nil {
		t.Fatal(err)
	}
	var out []doneLine
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var dl doneLine
		if err := json.Unmarshal(l, &dl); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, dl)
	}
	return out
}

func recordTargets(dl doneLine) []string {
	var out []string
	for _, r := range dl.Records {
		out = append(out, r.Target+"="+r.State)
	}
	return out
}

// A delivered event leaves no files: one line of the done log holds it,
// and a restart still knows its deliveries were made (Enqueue stays
// idempotent; list, show and the read-only view see them).
func TestDeliveredEventIsFolded(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	targets := map[string]target.Target{"a": f, "b": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	// A mail too big to be inline has an .eml of its own, which goes too.
	if err := q.Enqueue(mailEvent("ev2", bigMail("ev2")), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	h.outcomesByEvent(3)
	waitFolded(t, q, "ev1")
	waitFolded(t, q, "ev2")
	h.stop() // Close writes out whatever the journal still holds
	for _, sub := range []string{eventsDir, recordsDir} {
		if got := dirNames(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s holds %v after the event was folded", sub, got)
		}
	}
	lines := doneLines(t, dir)
	slices.SortFunc(lines, func(a, b doneLine) int { return strings.Compare(a.EventID, b.EventID) })
	if len(lines) != 2 || lines[0].EventID != "ev1" || !slices.Equal(recordTargets(lines[0]), []string{"a=done", "b=done"}) ||
		lines[1].EventID != "ev2" || bytes.Contains(lines[1].Event, []byte("xxxx")) {
		t.Fatalf("done log: %+v", lines)
	}
	if !bytes.Contains(lines[0].Event, []byte(`"title":"backup failed"`)) {
		t.Errorf("the line keeps no event: %s", lines[0].Event)
	}

	ro := OpenReadOnly(dir)
	ds, err := ro.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ds); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev2.a"}) {
		t.Errorf("read-only view lists %v", got)
	}
	if d, ev, err := ro.Get("ev1.a"); err != nil || d.State != StateDone || ev.Title != "backup failed" {
		t.Errorf("read-only Get = %+v, %+v, %v", d, ev, err)
	}

	h2 := newHarness(t, dir, targets, nil)
	q2 := h2.open()
	h2.run()
	for _, id := range []string{"ev1.a", "ev1.b"} {
		d, ev, err := q2.Get(id)
		if err != nil || d.State != StateDone || d.Attempts != 1 || ev.Title != "backup failed" {
			t.Errorf("after a restart Get(%s) = %+v, %+v, %v", id, d, ev, err)
		}
	}
	// The spool entry routed again after a crash: nothing to deliver.
	if err := q2.Enqueue(newEvent("ev1"), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	h2.stop()
	if calls, _ := f.stats(); calls != 3 {
		t.Errorf("%d deliveries, want 3 (one per event and target)", calls)
	}
	if got := dirNames(t, filepath.Join(dir, eventsDir)); len(got) != 0 {
		t.Errorf("events after the repeated Enqueue: %v", got)
	}
}

// A target added to a folded event gets a fresh event file; the folded
// deliveries stay done, and the event is folded again with all of them.
func TestFoldedEventGetsAnotherTarget(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	targets := map[string]target.Target{"a": f, "b": f}
	h := newHarness(t, dir, targets, nil)
	h.open()
	h.run()
	h.deliverFolded("ev1", []string{"a"}, 1)
	if d := h.deliverFolded("ev1", []string{"a", "b"}, 1); d.ID != "ev1.b" || d.State != StateDone {
		t.Fatalf("%+v", d)
	}
	h.stop()
	lines := doneLines(t, dir)
	if len(lines) != 2 || !slices.Equal(recordTargets(lines[1]), []string{"a=done", "b=done"}) {
		t.Fatalf("done log: %+v", lines)
	}
	h2 := newHarness(t, dir, targets, nil)
	q2 := h2.open()
	h2.run()
	if err := q2.Enqueue(newEvent("ev1"), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	h2.stop()
	if _, delivered := f.stats(); len(delivered) != 2 {
		t.Errorf("delivered %v, want ev1 once per target", delivered)
	}
}

// A crash after the line is appended but before the files are removed
// leaves both; they agree, and the files decide. Simulated by a removal
// that fails: nothing is lost or delivered again, and the files stay
// until collected.
func TestFoldRemovalFailureKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	f := &fake{block: make(chan struct{})}
	targets := map[string]target.Target{"a": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	// Armed once the event file is written: now only the fold removes it.
	h.setFail(func(s safeio.Step, p string) error {
		if s == safeio.StepWrite && strings.HasSuffix(p, "ev1.json") && !strings.Contains(p, recordsDir) {
			return errors.New("injected: no space left on device")
		}
		return nil
	})
	close(f.block)
	h.outcome()
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(h.logs.String(), "cannot remove the files of folded events") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed removal logged:\n%s", h.logs)
		}
		time.Sleep(time.Millisecond)
	}
	h.setFail(nil)
	if d := h.get("ev1.a"); d.State != StateDone {
		t.Errorf("%+v", d)
	}
	h.stop()
	if got := dirNames(t, filepath.Join(dir, eventsDir)); !slices.Equal(got, []string{"ev1.json"}) {
		t.Errorf("events: %v, want the file kept", got)
	}
	if got := dirNames(t, filepath.Join(dir, recordsDir)); !slices.Equal(got, []string{"ev1.a.json"}) {
		t.Errorf("records: %v, want the record kept", got)
	}
	if lines := doneLines(t, dir); len(lines) != 1 {
		t.Errorf("done log: %+v", lines)
	}

	g := &fake{}
	h2 := newHarness(t, dir, map[string]target.Target{"a": g}, nil)
	q2 := h2.open()
	if d := h2.get("ev1.a"); d.State != StateDone || d.Attempts != 1 {
		t.Errorf("after a restart: %+v", d)
	}
	h2.run()
	if err := q2.Enqueue(newEvent("ev1"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	h2.clock.Advance(2 * time.Hour)
	q2.gc()
	h2.stop()
	if calls, _ := g.stats(); calls != 0 {
		t.Errorf("delivered again %d times", calls)
	}
	for _, sub := range []string{eventsDir, recordsDir} {
		if got := dirNames(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s after collection: %v", sub, got)
		}
	}
}

// An append that fails is cut back (no torn line, no line for files that
// stay), and the event keeps its files.
func TestFoldAppendFailureKeepsFiles(t *testing.T) {
	for _, step := range []safeio.Step{safeio.StepWrite, safeio.StepSync} {
		t.Run(string(step), func(t *testing.T) {
			dir := t.TempDir()
			h := newHarness(t, dir, map[string]target.Target{"a": &fake{}}, nil)
			h.setFail(func(s safeio.Step, p string) error {
				if s == step && filepath.Base(p) == doneLogName {
					return errors.New("injected: I/O error")
				}
				return nil
			})
			q := h.open()
			h.run()
			if err := q.Enqueue(newEvent("ev1"), []string{"a"}); err != nil {
				t.Fatal(err)
			}
			h.outcome()
			deadline := time.Now().Add(waitLimit)
			for !strings.Contains(h.logs.String(), "cannot append to the done log") {
				if time.Now().After(deadline) {
					t.Fatalf("no failed append logged:\n%s", h.logs)
				}
				time.Sleep(time.Millisecond)
			}
			h.stop()
			if st, err := os.Stat(filepath.Join(dir, doneLogName)); err != nil || st.Size() != 0 {
				t.Errorf("done log after a failed append: %v, %v", st, err)
			}
			if got := dirNames(t, filepath.Join(dir, recordsDir)); !slices.Equal(got, []string{"ev1.a.json"}) {
				t.Errorf("records: %v", got)
			}
			if r := readRecordFile(t, dir, "ev1.a"); r.State != StateDone {
				t.Errorf("%+v", r)
			}
		})
	}
}

// Open cuts off a torn last line and skips a line it cannot read,
// keeping every other; the damaged log is set aside in quarantine.
func TestDoneLogTornAndDamagedLines(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"a": &fake{}}, nil)
	h.open()
	if err := h.q.Close(); err != nil {
		t.Fatal(err)
	}
	at := h.clock.Now()
	line := func(id string) []byte {
		b, err := json.Marshal(doneLine{EventID: id, Event: json.RawMessage(`{"id":"` + id + `"}`), Records: []record{
			{EventID: id, Target: "a", State: StateDone, Attempts: 1, Created: at, NextAttempt: at, Finished: at},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	}
	var log []byte
	log = append(log, line("ev1")...)
	log = append(log, "{not json\n"...)
	log = append(log, line("ev2")...)
	whole := len(log)
	log = append(log, line("ev3")[:20]...) // torn
	if err := os.WriteFile(filepath.Join(dir, doneLogName), log, 0o600); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, dir, map[string]target.Target{"a": &fake{}}, nil)
	h2.open()
	if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.a", "ev2.a"}) {
		t.Errorf("loaded %v", got)
	}
	if st, err := os.Stat(filepath.Join(dir, doneLogName)); err != nil || st.Size() != int64(whole-len("{not json\n")) {
		t.Errorf("done log is %v (%v), want its %d bytes of whole readable lines", st, err, whole-len("{not json\n"))
	}
	for _, want := range []string{"skipping an unreadable line of the done log", "cutting a torn line off the done log",
		"set the damaged done log aside"} {
		if !strings.Contains(h2.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h2.logs)
		}
	}
	// The damaged log is kept as it was (less the torn tail), and the log in
	// use holds its readable lines only.
	kept, err := os.ReadFile(filepath.Join(dir, quarantineDir, doneLogName))
	if err != nil || !bytes.Equal(kept, log[:whole]) {
		t.Errorf("quarantined log: %q, %v", kept, err)
	}
	var got []string
	for _, l := range doneLines(t, dir) {
		got = append(got, l.EventID)
	}
	if !slices.Equal(got, []string{"ev1", "ev2"}) {
		t.Errorf("the log in use holds %v", got)
	}
	// Appending goes on into the new log.
	h2.run()
	h2.deliverFolded("ev4", []string{"a"}, 1)
	if n := len(doneLines(t, dir)); n != 3 {
		t.Errorf("%d lines after one more fold, want 3", n)
	}
}

// gc forgets folded deliveries after the retention and compacts the log
// once most of its lines are of events it no longer keeps; what it keeps
// survives the compaction and a restart.
func TestDoneLogCompaction(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	targets := map[string]target.Target{"a": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	h.run()
	const old, young = compactSlack + 20, 5
	for i := range old + young {
		if i == old {
			h.clock.Advance(40 * time.Minute)
		}
		id := fmt.Sprintf("ev%03d", i)
		h.deliverFolded(id, []string{"a"}, 1)
	}
	// ev000 gets a second target now: its first delivery goes with the
	// old ones, the second stays.
	h.tmu.Lock()
	targets["b"] = f
	h.tmu.Unlock()
	h.deliverFolded("ev000", []string{"a", "b"}, 1)
	if n := len(doneLines(t, dir)); n != old+young+1 {
		t.Fatalf("%d lines before compaction", n)
	}
	h.clock.Advance(30 * time.Minute) // the old ones are past the hour
	q.gc()
	lines := doneLines(t, dir)
	var got []string
	for _, l := range lines {
		got = append(got, l.EventID)
	}
	want := []string{"ev276", "ev277", "ev278", "ev279", "ev280", "ev000"}
	if !slices.Equal(got, want) {
		t.Fatalf("after compaction the log holds %v, want %v", got, want)
	}
	if got := recordTargets(lines[len(lines)-1]); !slices.Equal(got, []string{"b=done"}) {
		t.Errorf("ev000's line keeps %v, want its delivery still kept alone", got)
	}
	if len(h.list()) != young+1 {
		t.Errorf("List = %v", ids(h.list()))
	}
	// Appending goes on after the compaction.
	h.deliverFolded("ev999", []string{"a"}, 1)
	h.stop()
	// A compaction that a crash interrupted leaves its temporary file.
	stale := filepath.Join(dir, safeio.TempPrefix+doneLogName+"-123")
	if err := os.WriteFile(stale, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, dir, targets, nil)
	h2.clock.Set(h.clock.Now())
	h2.open()
	defer h2.q.Close()
	wantIDs := []string{"ev000.b"}
	for _, id := range append(want[:young], "ev999") {
		wantIDs = append(wantIDs, id+".a")
	}
	if got := ids(h2.list()); !slices.Equal(got, wantIDs) {
		t.Errorf("after a restart: %v, want %v", got, wantIDs)
	}
	if got := dirNames(t, dir); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, safeio.TempPrefix) }) {
		t.Errorf("temporary files left: %v", got)
	}
}

// FuzzScanDoneLog: whatever a damaged done log holds, scanning it neither
// panics nor keeps a torn line or a record that is not done, and the part
// it keeps scans the same again.
func FuzzScanDoneLog(f *testing.F) {
	at := time.Date(2025, 5, 23, 12, 0, 0, 0, time.UTC)
	good, _ := json.Marshal(doneLine{EventID: "ev1", Event: json.RawMessage(`{"id":"ev1"}`), Records: []record{
		{EventID: "ev1", Target: "a", State: StateDone, Attempts: 1, Created: at, NextAttempt: at, Finished: at},
	}})
	f.Add(append(good, '\n'))
	f.Add(append(append(good, '\n'), good[:30]...))
	f.Add([]byte("{not json\n" + string(good) + "\n"))
	f.Add([]byte(`{"event_id":"ev2","records":[{"event_id":"ev2","target":"a","state":"pending"}]}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		size, lines, _, recs, err := scanDoneLog(bytes.NewReader(data), func(string, ...any) {})
		if err != nil {
			t.Fatal(err)
		}
		if size > int64(len(data)) || size > 0 && data[size-1] != '\n' {
			t.Fatalf("kept %d bytes of %d: not a whole line", size, len(data))
		}
		if lines != bytes.Count(data[:size], []byte("\n")) {
			t.Fatalf("%d lines counted in %q", lines, data[:size])
		}
		for id, r := range recs {
			if r.State != StateDone || deliveryID(r.EventID, r.Target) != id {
				t.Fatalf("kept %s: %+v", id, r)
			}
			if _, _, ok := splitID(id); !ok {
				t.Fatalf("kept invalid delivery id %q", id)
			}
		}
		size2, _, _, recs2, err := scanDoneLog(bytes.NewReader(data[:size]), func(string, ...any) {})
		if err != nil || size2 != size || len(recs2) != len(recs) {
			t.Fatalf("rescanning the kept part: %d bytes, %d records, %v", size2, len(recs2), err)
		}
	})
}

// Deliveries gc collected stay forgotten across a restart although the
// log is not compacted: a "forget" line names them.
func TestCollectedFoldedDeliveriesStayForgotten(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	targets := map[string]target.Target{"a": f, "b": f}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	h.run()
	h.deliverFolded("ev1", []string{"a"}, 1)
	h.clock.Advance(40 * time.Minute)
	h.deliverFolded("ev1", []string{"a", "b"}, 1)
	h.clock.Advance(30 * time.Minute) // ev1.a is past the hour, ev1.b not
	q.gc()
	if got := ids(h.list()); !slices.Equal(got, []string{"ev1.b"}) {
		t.Fatalf("after gc: %v", got)
	}
	h.stop()
	lines := doneLines(t, dir)
	if len(lines) != 3 || !slices.Equal(lines[2].Forget, []string{"ev1.a"}) {
		t.Fatalf("done log: %+v", lines)
	}
	h2 := newHarness(t, dir, targets, nil)
	h2.clock.Set(h.clock.Now())
	h2.open()
	defer h2.q.Close()
	if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.b"}) {
		t.Errorf("after a restart: %v (a collected delivery came back?)", got)
	}
	ro, err := OpenReadOnly(dir).List()
	if err != nil || !slices.Equal(ids(ro), []string{"ev1.b"}) {
		t.Errorf("read-only view: %v, %v", ids(ro), err)
	}
}
