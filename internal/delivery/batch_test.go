package delivery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/target"
)

// batcher is a local fake target.Batcher. Call n (0-based) waits, when
// gates[n] is set, until that channel is closed or its context ends,
// closing entered[n] first; an event's results are scripted by ID (one
// per call that carries it, nil past the end). It records its calls and
// what it delivered, and whether two calls ever overlapped.
type batcher struct {
	gates    []chan struct{}
	entered  []chan struct{}
	readMail bool

	mu        sync.Mutex
	script    map[string][]error
	calls     [][]string
	delivered []string
	mail      map[string]string
	cur, max  atomic.Int32
}

func newBatcher(gated int) *batcher {
	b := &batcher{script: map[string][]error{}, mail: map[string]string{}}
	for range gated {
		b.gates = append(b.gates, make(chan struct{}))
		b.entered = append(b.entered, make(chan struct{}))
	}
	return b
}

func (b *batcher) IsLocal() bool     { return true }
func (b *batcher) IgnoresMail() bool { return !b.readMail }

func (b *batcher) Deliver(ctx context.Context, ev *event.Event) error {
	return b.DeliverBatch(ctx, []*event.Event{ev})[0]
}

func (b *batcher) DeliverBatch(ctx context.Context, evs []*event.Event) []error {
	if n := b.cur.Add(1); n > b.max.Load() {
		b.max.Store(n)
	}
	defer b.cur.Add(-1)
	b.mu.Lock()
	n := len(b.calls)
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	b.calls = append(b.calls, ids)
	b.mu.Unlock()
	errs := make([]error, len(evs))
	if n < len(b.gates) {
		close(b.entered[n])
		select {
		case <-b.gates[n]:
		case <-ctx.Done():
			for i := range errs {
				errs[i] = target.Temporary(ctx.Err(), 0)
			}
			return errs
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, ev := range evs {
		if s := b.script[ev.ID]; len(s) > 0 {
			errs[i], b.script[ev.ID] = s[0], s[1:]
		}
		if errs[i] == nil {
			b.delivered = append(b.delivered, ev.ID)
			if ev.Mail != nil {
				b.mail[ev.ID] = string(ev.Mail.Raw)
			}
		}
	}
	return errs
}

func (b *batcher) stats() (calls [][]string, delivered []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls), slices.Clone(b.delivered)
}

// waitEntered waits for the target's gated call n.
func (b *batcher) waitEntered(t *testing.T, n int) {
	t.Helper()
	select {
	case <-b.entered[n]:
	case <-time.After(waitLimit):
		t.Fatalf("call %d of the target did not come", n)
	}
}

// waitInflight waits until each of ids has its record in flight on disk.
func waitInflight(t *testing.T, h *harness, tname string, ids []string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for _, id := range ids {
		for {
			r, err := h.liveRecord(id + "." + tname)
			if err == nil && r.State == StateInflight {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery %s was not recorded in flight: %v %+v", id, err, r)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// waitReady waits until n attempts of the target wait for their turn,
// recorded in flight: the ones its next turn may take along.
func waitReady(t *testing.T, q *Queue, tname string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		q.mu.Lock()
		ready := 0
		if tq := q.targets[tname]; tq != nil {
			for _, s := range tq.waiting {
				if s.state == slotReady {
					ready++
				}
			}
		}
		q.mu.Unlock()
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts of %s wait for their turn, want %d", ready, tname, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdFirst enqueues ids[0] alone and waits for the target's first call,
// held at its gate, so that it carries that one event only; then it
// enqueues the rest of ids and waits until the attempts dispatched behind
// the first (up to depth in all) wait for their turn, recorded in flight.
func holdFirst(t *testing.T, h *harness, b *batcher, tname string, ids []string, depth int, mk func(id string) *event.Event) {
	t.Helper()
	if err := h.q.Enqueue(mk(ids[0]), []string{tname}); err != nil {
		t.Fatal(err)
	}
	b.waitEntered(t, 0)
	for _, id := range ids[1:] {
		if err := h.q.Enqueue(mk(id), []string{tname}); err != nil {
			t.Fatal(err)
		}
	}
	if calls, _ := b.stats(); !slices.Equal(calls[0], ids[:1]) {
		t.Fatalf("the first call carried %v, want %v alone", calls[0], ids[:1])
	}
	waitInflight(t, h, tname, ids[1:depth])
	waitReady(t, h.q, tname, depth-1)
}

// checkSecondBatch checks the call that followed holdFirst's: it carries
// the depth-1 attempts recorded behind the first call, in order, and
// perhaps also the one dispatched into the slot the first call freed, when
// that recorded itself before the call took its batch. It returns the
// index in ids after the last one carried.
func checkSecondBatch(t *testing.T, batch, ids []string, depth int) int {
	t.Helper()
	if n := len(batch); n < depth-1 || n > depth || !slices.Equal(batch, ids[1:1+n]) {
		t.Fatalf("second call carried %v, want %v (and perhaps %s)", batch, ids[1:depth], ids[depth])
	}
	return 1 + len(batch)
}

// eventIDs returns n event IDs, ev00 on.
func eventIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ev%02d", i)
	}
	return ids
}

// While the target is busy, the attempts behind it record themselves in
// flight; the next turn takes them along in one call, in dispatch order,
// and each records its own outcome and history.
func TestBatchesFormKeepOrderAndRecordEach(t *testing.T) {
	const depth, events = 8, 20
	b := newBatcher(1)
	h := newHarness(t, t.TempDir(), map[string]target.Target{"f": b}, func(o *Options) { o.LocalDepth = depth })
	h.open()
	h.run()
	ids := eventIDs(events)
	holdFirst(t, h, b, "f", ids, depth, newEvent)
	close(b.gates[0])
	for range events {
		if d := h.outcome(); d.State != StateDone {
			t.Fatalf("%+v", d)
		}
	}
	calls, delivered := b.stats()
	if !slices.Equal(delivered, ids) {
		t.Errorf("delivered in order %v, want %v", delivered, ids)
	}
	if len(calls) < 2 {
		t.Fatalf("calls %v: no second call", calls)
	}
	checkSecondBatch(t, calls[1], ids, depth)
	if len(calls) >= events {
		t.Errorf("%d calls for %d events: no batches", len(calls), events)
	}
	if m := b.max.Load(); m != 1 {
		t.Errorf("%d calls of the target at once, want 1", m)
	}
	h.writeOut()
	for _, id := range ids {
		r := readRecordFile(t, h.dir, id+".f")
		if r.State != StateDone || r.Attempts != 1 || len(r.History) != 1 || r.History[0].Outcome != "delivered" {
			t.Errorf("record of %s: %+v", id, r)
		}
	}
	t.Logf("%d events in %d calls: %v", events, len(calls), calls)
}

// Each attempt of a batch gets its own result: a temporary failure is
// retried with backoff, a permanent one is a dead letter, the others are
// done, and the retry is delivered later.
func TestBatchResultsAreEachAttempts(t *testing.T) {
	const depth = 6
	b := newBatcher(1)
	b.script["ev02"] = []error{errTemp}
	b.script["ev04"] = []error{target.Permanent(errTest("550 no such mailbox"))}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"f": b}, func(o *Options) { o.LocalDepth = depth })
	q := h.open()
	h.run()
	ids := eventIDs(depth)
	holdFirst(t, h, b, "f", ids, depth, newEvent)
	close(b.gates[0])
	got := h.outcomesByEvent(len(ids))
	for _, id := range ids {
		d := got[id]
		switch id {
		case "ev02":
			if d.State != StatePending || d.Attempts != 1 || d.LastError == "" || d.History[0].Outcome != "retry" {
				t.Errorf("%s, which failed for now: %+v", id, d)
			}
		case "ev04":
			if d.State != StateDead || d.Attempts != 1 {
				t.Errorf("%s, which failed for good: %+v", id, d)
			}
		default:
			if d.State != StateDone {
				t.Errorf("%s: %+v", id, d)
			}
		}
	}
	if d := <-h.dead; d.EventID != "ev04" {
		t.Errorf("dead letter %+v, want ev04's", d)
	}
	if calls, _ := b.stats(); len(calls) != 2 {
		t.Errorf("calls %v, want 2", calls)
	}
	h.clock.Advance(time.Hour)
	q.Kick()
	if d := h.outcome(); d.EventID != "ev02" || d.State != StateDone || d.Attempts != 2 {
		t.Errorf("the retry: %+v", d)
	}
	if _, delivered := b.stats(); len(delivered) != depth-1 {
		t.Errorf("delivered %v, want all but ev04 once", delivered)
	}
}

// At shutdown, attempts taken along by a call in progress wait for its
// result instead of taking their records back; those still waiting for
// their turn take theirs back. After a restart every event is delivered,
// none twice.
func TestShutdownWhileABatchDelivers(t *testing.T) {
	const depth, events = 6, 12
	dir := t.TempDir()
	b := newBatcher(2)
	tweak := func(o *Options) {
		o.LocalDepth = depth
		o.ShutdownGrace = 50 * time.Millisecond
	}
	h := newHarness(t, dir, map[string]target.Target{"f": b}, tweak)
	h.open()
	h.run()
	ids := eventIDs(events)
	holdFirst(t, h, b, "f", ids, depth, newEvent)
	const first = 1
	close(b.gates[0])
	b.waitEntered(t, 1) // the second call, carrying the attempts behind, hangs
	h.stop()            // ... until the grace ends and cancels it
	calls, _ := b.stats()
	if len(calls) != 2 {
		t.Fatalf("calls %v, want 2", calls)
	}
	carried := checkSecondBatch(t, calls[1], ids, depth)
	for _, id := range ids[first:carried] {
		r, err := readRecord(filepath.Join(dir, recordsDir, id+".f.json"), id+".f")
		if err != nil {
			t.Fatal(err)
		}
		if r.State != StatePending || r.Attempts != 1 || len(r.History) != 1 || r.History[0].Outcome != "retry" {
			t.Errorf("%s, taken along by the cancelled call: %+v, want pending after one attempt", id, r)
		}
	}
	for _, id := range ids[carried:] {
		r, err := readRecord(filepath.Join(dir, recordsDir, id+".f.json"), id+".f")
		if err == nil && (r.State != StatePending || r.Attempts != 0) {
			t.Errorf("%s, waiting for its turn at shutdown: %+v, want taken back", id, r)
		}
	}

	h2 := newHarness(t, dir, map[string]target.Target{"f": b}, tweak)
	h2.clock.Advance(time.Hour)
	h2.open()
	h2.run()
	deadline := time.Now().Add(waitLimit)
	for {
		if _, delivered := b.stats(); len(delivered) == events {
			break
		}
		if time.Now().After(deadline) {
			_, delivered := b.stats()
			t.Fatalf("after the restart %d of %d events delivered: %v\nqueue: %+v", len(delivered), events, delivered, h2.list())
		}
		time.Sleep(time.Millisecond)
	}
	_, delivered := b.stats()
	slices.Sort(delivered)
	if !slices.Equal(delivered, ids) {
		t.Errorf("delivered %v, want each of %v once", delivered, ids)
	}
}

// A target that reads the raw mail gets each event's mail, loaded by the
// attempt whose turn it is; an attempt whose mail vanished while it waited
// is a dead letter alone, the rest of its batch is delivered.
func TestBatchLoadsEachMail(t *testing.T) {
	const depth = 4
	b := newBatcher(1)
	b.readMail = true
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"m": b}, func(o *Options) { o.LocalDepth = depth })
	h.open()
	h.run()
	ids := eventIDs(depth)
	holdFirst(t, h, b, "m", ids, depth, func(id string) *event.Event {
		return mailEvent(id, bigMail(id)) // an .eml each, which the test removes
	})
	if err := os.Remove(filepath.Join(dir, eventsDir, "ev02.eml")); err != nil {
		t.Fatal(err)
	}
	close(b.gates[0])
	got := h.outcomesByEvent(len(ids))
	if d := got["ev02"]; d.State != StateDead || !strings.Contains(d.LastError, "unreadable") {
		t.Errorf("ev02, whose mail vanished: %+v", d)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range []string{"ev00", "ev01", "ev03"} {
		if got[id].State != StateDone || b.mail[id] != string(bigMail(id)) {
			t.Errorf("%s: %+v, mail of %d bytes", id, got[id], len(b.mail[id]))
		}
	}
	if want := slices.DeleteFunc(slices.Clone(ids[1:]), func(id string) bool { return id == "ev02" }); !slices.Equal(b.calls[1], want) {
		t.Errorf("calls %v", b.calls)
	}
}
