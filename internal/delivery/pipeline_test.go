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

// gate is a target whose first call waits until open is closed; it records
// the order of its calls and how many ran at once.
type gate struct {
	open        chan struct{}
	first       sync.Once
	entered     chan struct{} // closed when the first call is waiting
	mu          sync.Mutex
	order       []string
	cur, maxCur atomic.Int32
}

func newGate() *gate { return &gate{open: make(chan struct{}), entered: make(chan struct{})} }

func (g *gate) Deliver(ctx context.Context, ev *event.Event) error {
	n := g.cur.Add(1)
	defer g.cur.Add(-1)
	for m := g.maxCur.Load(); n > m && !g.maxCur.CompareAndSwap(m, n); m = g.maxCur.Load() {
	}
	held := false
	g.first.Do(func() { held = true })
	if held {
		close(g.entered)
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	g.order = append(g.order, ev.ID)
	g.mu.Unlock()
	return nil
}

// While a target is busy with one delivery, the next ones of its pipeline
// are already recorded in flight (their fsyncs overlap the call), no more
// than TargetDepth are dispatched, the target is still called by one
// attempt at a time, and the calls keep the order of the queue.
// Local targets have pipelines of their own depth.
func TestPipelineRecordsAheadAndCallsInOrder(t *testing.T) {
	t.Run("remote", func(t *testing.T) {
		g := newGate()
		testPipeline(t, g, g, 3, func(o *Options) { o.TargetDepth = 3 })
	})
	t.Run("local", func(t *testing.T) {
		g := newGate()
		testPipeline(t, localGate{g}, g, 2, func(o *Options) { o.LocalDepth = 2 })
	})
}

// localGate is a gate that declares itself local (target.Local).
type localGate struct{ *gate }

func (localGate) IsLocal() bool { return true }

func testPipeline(t *testing.T, tg target.Target, g *gate, depth int, tweak func(*Options)) {
	const events = 6
	h := newHarness(t, t.TempDir(), map[string]target.Target{"p": tg}, tweak)
	q := h.open()
	h.run()
	var ids []string
	for i := range events {
		id := fmt.Sprintf("ev%02d", i)
		ids = append(ids, id)
		if err := q.Enqueue(newEvent(id), []string{"p"}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-g.entered:
	case <-time.After(waitLimit):
		t.Fatal("the first delivery was not attempted")
	}
	// The next depth-1 deliveries record themselves while the first call
	// is held; the ones after them wait for a place in the pipeline.
	deadline := time.Now().Add(waitLimit)
	for i := 1; i < depth; i++ {
		for {
			r, err := h.liveRecord(ids[i] + ".p")
			if err == nil && r.State == StateInflight && r.Attempts == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery %s was not recorded in flight while the one before it was held: %v %+v", ids[i], err, r)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, id := range ids[depth:] {
		if d := h.get(id + ".p"); d.State != StatePending || d.Attempts != 0 {
			t.Errorf("delivery %s was dispatched beyond the pipeline's depth %d: %+v", id, depth, d)
		}
	}
	if n := g.cur.Load(); n != 1 {
		t.Errorf("%d calls of the target at once while the first is held, want 1", n)
	}
	close(g.open)
	for range events {
		if d := h.outcome(); d.State != StateDone {
			t.Fatalf("%+v", d)
		}
	}
	g.mu.Lock()
	order := slices.Clone(g.order)
	g.mu.Unlock()
	if !slices.Equal(order, ids) {
		t.Errorf("calls in order %v, want %v", order, ids)
	}
	if m := g.maxCur.Load(); m != 1 {
		t.Errorf("%d calls of one target at once, want 1", m)
	}
}

// hanger is a target whose every call hangs for 5 s (or until its
// context ends).
type hanger struct{ calls, done atomic.Int32 }

func (h *hanger) Deliver(ctx context.Context, ev *event.Event) error {
	h.calls.Add(1)
	select {
	case <-time.After(5 * time.Second):
		h.done.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A target that hangs (5 s a call) delays neither another target's
// delivery of the same events nor of later ones: it holds one slot of its
// class, however many deliveries wait for it, even when the class has
// only two.
func TestHangingTargetDelaysNoOtherTarget(t *testing.T) {
	hang := &hanger{}
	fast := &fake{name: "fast"}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"a-hang": hang, "b-fast": fast}, func(o *Options) {
		o.Concurrency = 2
		o.ShutdownGrace = 50 * time.Millisecond
	})
	q := h.open()
	h.run()
	start := time.Now()
	for wave := range 2 { // the same events, then later ones
		for i := range 5 {
			if err := q.Enqueue(newEvent(fmt.Sprintf("w%dev%d", wave, i)), []string{"a-hang", "b-fast"}); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 {
			select {
			case d := <-h.outcomes:
				if d.Target != "b-fast" || d.State != StateDone {
					t.Fatalf("outcome %+v while the hanging target still hangs", d)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("wave %d: the fast target waited behind the hanging one (2 s)", wave)
			}
		}
	}
	took := time.Since(start)
	if _, delivered := fast.stats(); len(delivered) != 10 {
		t.Errorf("fast target got %d deliveries, want 10", len(delivered))
	}
	if hang.done.Load() != 0 || took >= 5*time.Second {
		t.Fatalf("the test ran %v: the hanging target was not hanging meanwhile", took)
	}
	if n := hang.calls.Load(); n != 1 {
		t.Errorf("the hanging target was called %d times at once, want 1", n)
	}
	t.Logf("10 deliveries to the fast target in %v while the other target hangs", took)
}

// At shutdown, an attempt still waiting for its turn never calls the
// target: its record goes back to pending with its attempts uncounted.
func TestShutdownTakesBackAttemptsWaitingForTheirTurn(t *testing.T) {
	g := newGate()
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"p": g}, func(o *Options) {
		o.TargetDepth = 2
		o.ShutdownGrace = 50 * time.Millisecond
	})
	q := h.open()
	h.run()
	for _, id := range []string{"ev1", "ev2"} {
		if err := q.Enqueue(newEvent(id), []string{"p"}); err != nil {
			t.Fatal(err)
		}
	}
	<-g.entered
	deadline := time.Now().Add(waitLimit)
	for {
		r, err := h.liveRecord("ev2.p")
		if err == nil && r.State == StateInflight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ev2 was not recorded in flight behind ev1")
		}
		time.Sleep(time.Millisecond)
	}
	h.stop() // ev1's call is cancelled after the grace; ev2 never had its turn
	r, err := readRecord(filepath.Join(dir, recordsDir, "ev2.p.json"), "ev2.p")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StatePending || r.Attempts != 0 {
		t.Errorf("ev2 after shutdown: %+v, want pending with no attempt", r)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if slices.Contains(g.order, "ev2") {
		t.Error("ev2 was delivered during shutdown")
	}
}

// mailGate is a gate that reads the raw mail (it is not target.MailBlind)
// and records what it got.
type mailGate struct {
	*gate
	raw map[string]string
}

func (m *mailGate) Deliver(ctx context.Context, ev *event.Event) error {
	if err := m.gate.Deliver(ctx, ev); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.Mail != nil {
		m.raw[ev.ID] = string(ev.Mail.Raw)
	}
	return nil
}

// An attempt that waits in a pipeline does not hold the raw mail, which
// may be tens of megabytes: a target that reads it gets it in its turn.
func TestRawMailIsLoadedInTheAttemptsTurn(t *testing.T) {
	m := &mailGate{gate: newGate(), raw: map[string]string{}}
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"m": m}, func(o *Options) { o.TargetDepth = 2 })
	q := h.open()
	h.run()
	for _, id := range []string{"ev1", "ev2"} {
		// Big mails: each has its own .eml, which the test removes.
		if err := q.Enqueue(mailEvent(id, bigMail(id)), []string{"m"}); err != nil {
			t.Fatal(err)
		}
	}
	<-m.entered
	deadline := time.Now().Add(waitLimit)
	for {
		r, err := h.liveRecord("ev2.m")
		if err == nil && r.State == StateInflight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ev2 was not recorded in flight behind ev1")
		}
		time.Sleep(time.Millisecond)
	}
	// ev2 waits for its turn; its mail is read only then, and it is gone.
	if err := os.Remove(filepath.Join(dir, eventsDir, "ev2.eml")); err != nil {
		t.Fatal(err)
	}
	close(m.open)
	got := h.outcomesByEvent(2)
	if d := got["ev1"]; d.State != StateDone {
		t.Errorf("ev1: %+v", d)
	}
	if d := got["ev2"]; d.State != StateDead || !strings.Contains(d.LastError, "unreadable") {
		t.Errorf("ev2, whose mail vanished while it waited: %+v, want dead, unreadable", d)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.raw["ev1"] != string(bigMail("ev1")) {
		t.Errorf("ev1's mail as delivered: %d bytes", len(m.raw["ev1"]))
	}
	if _, ok := m.raw["ev2"]; ok {
		t.Error("ev2 was delivered without its mail")
	}
}
