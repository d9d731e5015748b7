package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/safeio"
	"herald/internal/target"
	"herald/internal/testkit"
)

const waitLimit = 10 * time.Second

// clock is a fake clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 5, 23, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// fake is a scripted target: call n returns script[n] (nil past the end),
// and it counts calls and concurrency.
type fake struct {
	name      string
	mu        sync.Mutex
	script    []error
	calls     int
	delivered []string // event IDs, in order
	hold      time.Duration
	panicOn   int // 1-based call number that panics; 0: never
	block     chan struct{}

	inflight, maxInflight atomic.Int32
	global                *counter
}

// counter tracks attempts in flight across targets.
type counter struct{ cur, max atomic.Int32 }

func (c *counter) enter() {
	n := c.cur.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (f *fake) Deliver(ctx context.Context, ev *event.Event) error {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxInflight.Load()
		if n <= m || f.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	if f.global != nil {
		f.global.enter()
		defer f.global.cur.Add(-1)
	}
	if f.hold > 0 {
		// Holding the slot widens the window in which a second attempt
		// would overlap; it synchronises nothing.
		time.Sleep(f.hold)
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls == f.panicOn {
		panic("scripted panic")
	}
	var err error
	if f.calls <= len(f.script) {
		err = f.script[f.calls-1]
	}
	if err == nil {
		f.delivered = append(f.delivered, ev.ID)
	}
	return err
}

func (f *fake) stats() (calls int, delivered []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, slices.Clone(f.delivered)
}

// verifying is a fake that can say whether an event was delivered.
type verifying struct {
	*fake
	delivered func(ev *event.Event) bool
	asked     atomic.Int32
}

func (v *verifying) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	v.asked.Add(1)
	return v.delivered(ev), nil
}

// harness runs a queue over a set of targets and collects outcomes.
type harness struct {
	t        *testing.T
	dir      string
	clock    *clock
	targets  map[string]target.Target
	tmu      sync.Mutex
	q        *Queue
	outcomes chan Delivery
	dead     chan Delivery
	deadN    atomic.Int32
	stop     func()
	logs     *testkit.Buffer
	opt      Options
	fail     atomic.Pointer[func(safeio.Step, string) error]
}

// setFail injects failures into the queue's journal (nil: none).
func (h *harness) setFail(f func(s safeio.Step, path string) error) {
	if f == nil {
		h.fail.Store(nil)
		return
	}
	h.fail.Store(&f)
}

func newHarness(t *testing.T, dir string, targets map[string]target.Target, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, clock: newClock(), targets: targets,
		outcomes: make(chan Delivery, 1000), dead: make(chan Delivery, 1000), logs: &testkit.Buffer{}}
	h.opt = Options{
		Dir: dir,
		Target: func(name string) (target.Target, bool) {
			h.tmu.Lock()
			defer h.tmu.Unlock()
			tg, ok := h.targets[name]
			return tg, ok
		},
		Logger:  slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     h.clock.Now,
		Backoff: Backoff{Initial: time.Minute, Max: time.Hour, Factor: 2, Jitter: 0},
		OnDead: func(d Delivery, ev *event.Event) {
			h.deadN.Add(1)
			h.dead <- d
		},
		OnOutcome: func(d Delivery, err error) { h.outcomes <- d },
	}
	h.opt.Fail = func(s safeio.Step, path string) error {
		if f := h.fail.Load(); f != nil {
			return (*f)(s, path)
		}
		return nil
	}
	if tweak != nil {
		tweak(&h.opt)
	}
	return h
}

// writeOut makes the queue's directories show its state: the files its
// journal holds (safeio.Op.Held) are written out, as a checkpoint would.
func (h *harness) writeOut() {
	h.t.Helper()
	if err := h.q.j.WriteOut(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) open() *Queue {
	h.t.Helper()
	q, err := Open(h.opt)
	if err != nil {
		h.t.Fatal(err)
	}
	h.q = q
	return q
}

// run starts Run; stop (also a cleanup) cancels it, waits for it to return
// and closes the queue.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	q := h.q
	go func() { done <- q.Run(ctx) }()
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			h.t.Fatalf("Run did not return within %v of its context ending", waitLimit)
		}
		if err := q.Close(); err != nil {
			h.t.Error(err)
		}
	}
	h.t.Cleanup(h.stop)
}

// outcome waits for the next attempt outcome.
func (h *harness) outcome() Delivery {
	h.t.Helper()
	select {
	case d := <-h.outcomes:
		return d
	case <-time.After(waitLimit):
		h.t.Fatalf("no delivery attempt within %v; queue: %+v\nlog:\n%s", waitLimit, h.list(), h.logs)
		return Delivery{}
	}
}

// outcomesByEvent waits for n outcomes, which attempts recorded side by
// side may report in any order, and returns them by event ID.
func (h *harness) outcomesByEvent(n int) map[string]Delivery {
	h.t.Helper()
	got := make(map[string]Delivery, n)
	for range n {
		d := h.outcome()
		got[d.EventID] = d
	}
	return got
}

func (h *harness) list() []Delivery {
	l, err := h.q.List()
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *harness) get(id string) Delivery {
	h.t.Helper()
	d, _, err := h.q.Get(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func newEvent(id string) *event.Event {
	return &event.Event{ID: id, Timestamp: time.Date(2025, 5, 23, 11, 0, 0, 0, time.UTC), Severity: event.Error,
		Title: "backup failed", Body: "job 1 failed", Fields: map[string]string{"type": "vzdump", "hostname": "pve1"}}
}

var errTemp = target.Temporary(errors.New("451 4.3.0 try again later"), 0)

func TestRetriesUntilDeliveredExactlyOnce(t *testing.T) {
	const failures = 4
	f := &fake{script: slices.Repeat([]error{errTemp}, failures)}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"relay": f}, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	var prevNext time.Time
	for i := 1; i <= failures; i++ {
		d := h.outcome()
		if d.State != StatePending || d.Attempts != i {
			t.Fatalf("after failure %d: %+v", i, d)
		}
		wait := d.NextAttempt.Sub(h.clock.Now())
		if want := h.opt.Backoff.Delay(i, nil); wait != want {
			t.Errorf("failure %d: next attempt in %v, want %v", i, wait, want)
		}
		if !prevNext.IsZero() && !d.NextAttempt.After(prevNext) {
			t.Errorf("next attempt did not move forward: %v then %v", prevNext, d.NextAttempt)
		}
		prevNext = d.NextAttempt
		h.clock.Set(d.NextAttempt)
		q.Kick()
	}
	d := h.outcome()
	if d.State != StateDone || d.Attempts != failures+1 || d.LastError != "" {
		t.Fatalf("final state %+v, want done after %d attempts", d, failures+1)
	}
	if len(d.History) != failures+1 || d.History[failures].Outcome != "delivered" || d.History[0].Outcome != "retry" ||
		d.History[0].Error != errTemp.Error() {
		t.Errorf("history %+v", d.History)
	}
	// A second event to the same target is a synchronisation point: once
	// it is delivered, any stray extra attempt of ev1 would have shown.
	if err := q.Enqueue(newEvent("ev2"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	if d := h.outcome(); d.EventID != "ev2" || d.State != StateDone {
		t.Fatalf("second event: %+v", d)
	}
	calls, delivered := f.stats()
	if calls != failures+2 || !slices.Equal(delivered, []string{"ev1", "ev2"}) {
		t.Errorf("target saw %d calls, delivered %v; want %d calls, [ev1 ev2]", calls, delivered, failures+2)
	}
	if h.deadN.Load() != 0 {
		t.Error("OnDead called for a delivery that succeeded")
	}
	// Logging: the first failure is a warning; identical repeats are debug.
	logs := h.logs.String()
	if n := strings.Count(logs, "level=WARN msg=\"delivery failed, will retry\""); n != 1 {
		t.Errorf("%d warnings for one repeated error, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, `msg="delivered after retries"`) || !strings.Contains(logs, "delivery_id=ev1.relay") {
		t.Errorf("recovery not logged with its ids:\n%s", logs)
	}
}

func TestPermanentErrorIsDeadAtOnce(t *testing.T) {
	f := &fake{script: []error{target.Permanent(errors.New("550 5.1.1 no such user"))}}
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"relay": f}, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	d := h.outcome()
	if d.State != StateDead || d.Attempts != 1 || d.LastError != "550 5.1.1 no such user" {
		t.Fatalf("%+v, want dead after one attempt", d)
	}
	select {
	case dd := <-h.dead:
		if dd.ID != "ev1.relay" {
			t.Errorf("OnDead for %s", dd.ID)
		}
	case <-time.After(waitLimit):
		t.Fatal("OnDead not called")
	}
	h.stop()
	if n := h.deadN.Load(); n != 1 {
		t.Fatalf("OnDead called %d times", n)
	}
	r := readRecordFile(t, dir, "ev1.relay")
	if !r.DeadNotified || r.State != StateDead {
		t.Errorf("record %+v: want dead and notified", r)
	}
	// A restart does not report it again.
	h2 := newHarness(t, dir, map[string]target.Target{"relay": f}, nil)
	h2.open()
	h2.run()
	if err := h2.q.Enqueue(newEvent("ev2"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	h2.outcome() // a full loop turn after start-up
	if n := h2.deadN.Load(); n != 0 {
		t.Errorf("OnDead called %d times again after a restart", n)
	}
}

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

func TestMaxAgeGivesUp(t *testing.T) {
	f := &fake{script: slices.Repeat([]error{errTemp}, 1000)}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"relay": f}, func(o *Options) {
		o.MaxAge = 3 * time.Hour
		o.Backoff = Backoff{Initial: 10 * time.Minute, Max: 2 * time.Hour, Factor: 2}
	})
	q := h.open()
	h.run()
	created := h.clock.Now()
	if err := q.Enqueue(newEvent("ev1"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	deadline := created.Add(3 * time.Hour)
	var d Delivery
	for i := 0; ; i++ {
		if i > 20 {
			t.Fatalf("still not dead after %d attempts: %+v", i, d)
		}
		d = h.outcome()
		if d.State == StateDead {
			break
		}
		if d.NextAttempt.After(deadline) {
			t.Fatalf("next attempt %v beyond the maximum age %v", d.NextAttempt, deadline)
		}
		h.clock.Set(d.NextAttempt)
		q.Kick()
	}
	// 10m, 20m, 40m, 80m (sum 150m), then capped at the deadline (180m),
	// where the sixth attempt fails for good.
	if d.Attempts != 6 || !strings.Contains(d.LastError, "try again later") {
		t.Errorf("dead after %d attempts with %q, want 6", d.Attempts, d.LastError)
	}
	if got := h.clock.Now(); !got.Equal(deadline) {
		t.Errorf("gave up at %v, want the deadline %v", got, deadline)
	}
	select {
	case <-h.dead:
	case <-time.After(waitLimit):
		t.Fatal("OnDead not called")
	}
	if !strings.Contains(h.logs.String(), `msg="giving up on delivery"`) {
		t.Errorf("giving up not logged:\n%s", h.logs)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := &fake{script: []error{target.Temporary(errors.New("429"), 3*time.Hour)}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"hook": f}, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"hook"}); err != nil {
		t.Fatal(err)
	}
	d := h.outcome()
	if got := d.NextAttempt.Sub(h.clock.Now()); got != 3*time.Hour {
		t.Errorf("next attempt in %v, want the server's 3h", got)
	}
}

func TestPerTargetSerialisationAndGlobalBound(t *testing.T) {
	const concurrency, nTargets, perTarget = 2, 4, 8
	global := &counter{}
	targets := map[string]target.Target{}
	var fakes []*fake
	for i := range nTargets {
		f := &fake{name: fmt.Sprint("t", i), hold: 3 * time.Millisecond, global: global}
		fakes = append(fakes, f)
		targets[f.name] = f
	}
	h := newHarness(t, t.TempDir(), targets, func(o *Options) { o.Concurrency = concurrency })
	q := h.open()
	h.run()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range targets {
			if !yield(n) {
				return
			}
		}
	})
	for i := range perTarget {
		if err := q.Enqueue(newEvent(fmt.Sprint("ev", i)), names); err != nil {
			t.Fatal(err)
		}
	}
	for range nTargets * perTarget {
		if d := h.outcome(); d.State != StateDone {
			t.Fatalf("%+v", d)
		}
	}
	for _, f := range fakes {
		if m := f.maxInflight.Load(); m != 1 {
			t.Errorf("target %s had %d attempts in flight at once, want 1", f.name, m)
		}
		_, delivered := f.stats()
		if len(delivered) != perTarget {
			t.Errorf("target %s got %d deliveries, want %d", f.name, len(delivered), perTarget)
		}
	}
	if m := global.max.Load(); m > concurrency {
		t.Errorf("%d attempts in flight at once, bound is %d", m, concurrency)
	} else if m < concurrency {
		t.Errorf("never more than %d attempt in flight: the bound of %d was not used", m, concurrency)
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
			h2.writeOut()
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

func TestEnqueueIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	h := newHarness(t, dir, map[string]target.Target{"a": f, "b": f, "c": f}, nil)
	q := h.open()
	ev := newEvent("ev1")
	if err := q.Enqueue(ev, nil); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, filepath.Join(dir, eventsDir)); len(names) != 0 {
		t.Fatalf("empty target list wrote %v", names)
	}
	if err := q.Enqueue(ev, []string{"a", "b", "a"}); err != nil {
		t.Fatal(err)
	}
	before := h.get("ev1.a")
	h.clock.Advance(time.Minute)
	if err := q.Enqueue(ev, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(h.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev1.c"}) {
		t.Fatalf("deliveries %v", got)
	}
	h.writeOut()
	if got := listedNames(t, dir, "ev1"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("event file lists %v", got)
	}
	if after := h.get("ev1.a"); !after.Created.Equal(before.Created) {
		t.Error("existing delivery changed")
	}
	// Delivered, then the spool routes the same entry again after a
	// restart: nothing new happens.
	h.run()
	for range 3 {
		h.outcome()
	}
	h.stop()
	h2 := newHarness(t, dir, map[string]target.Target{"a": f, "b": f, "c": f}, nil)
	h2.clock.Advance(48 * time.Hour) // down for two days: done records still count
	q2 := h2.open()
	if err := q2.Enqueue(ev, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	h2.run()
	if err := q2.Enqueue(newEvent("ev2"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if d := h2.outcome(); d.EventID != "ev2" {
		t.Fatalf("event re-enqueued after a restart was delivered again: %+v", d)
	}
	if calls, _ := f.stats(); calls != 4 {
		t.Errorf("%d deliveries, want 4", calls)
	}
}

func TestEnqueueRejectsBadNames(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil, nil)
	q := h.open()
	defer q.Close()
	for _, tc := range []struct {
		id      string
		targets []string
	}{
		{"../x", []string{"a"}},
		{"a.b", []string{"a"}},
		{"", []string{"a"}},
		{"ok", []string{"a/b"}},
		{"ok", []string{".hidden"}},
		{"ok", []string{""}},
	} {
		if err := q.Enqueue(newEvent(tc.id), tc.targets); err == nil {
			t.Errorf("Enqueue(%q, %q) accepted", tc.id, tc.targets)
		}
	}
	if names := dirNames(t, filepath.Join(h.dir, recordsDir)); len(names) != 0 {
		t.Errorf("rejected enqueues wrote %v", names)
	}
	if err := q.Enqueue(newEvent("ok"), []string{"smtp.relay-1", "_x"}); err != nil {
		t.Errorf("valid names refused: %v", err)
	}
}

// TestEnqueueWriteFailures injects a failure at every step of every file
// write of an Enqueue (a new mail event to 3 targets, and targets added to an
// event already queued): it must return an error, leave no partial file, and
// leave a state that Open accepts, with nothing of the failed call queued
// (a write the journal committed but could not apply is cancelled), and
// that a second Enqueue completes without duplicates.
func TestEnqueueWriteFailures(t *testing.T) {
	steps := []safeio.Step{safeio.StepWrite, safeio.StepSync, safeio.StepApply}
	cases := []struct {
		name   string
		before []string // queued first, without failure
		file   string   // the write that fails
	}{
		{"new", nil, "ev1.eml"},
		{"new", nil, "ev1.json"},
		{"add", []string{"a"}, "ev1.json"},
	}
	for _, tc := range cases {
		for _, step := range steps {
			if step == safeio.StepApply && strings.HasSuffix(tc.file, ".json") {
				// An event file is held (eventFileOp): nothing is applied
				// at its commit. The journal's own tests cover a held
				// file that cannot be written out.
				continue
			}
			t.Run(tc.name+"/"+tc.file+"/"+string(step), func(t *testing.T) {
				dir := t.TempDir()
				h := newHarness(t, dir, map[string]target.Target{"a": &fake{}, "b": &fake{}, "c": &fake{}}, nil)
				q := h.open()
				ev := newEvent("ev1")
				// Big enough for a file of its own (ev1.eml).
				ev.Mail = &event.Mail{Raw: bigMail("ev1"), From: "root@h", Recipients: []string{"root"}}
				if err := q.Enqueue(ev, tc.before); err != nil {
					t.Fatal(err)
				}
				injected := errors.New("injected failure")
				h.setFail(func(s safeio.Step, path string) error {
					if s == step && filepath.Base(path) == tc.file {
						return injected
					}
					return nil
				})
				err := q.Enqueue(ev, []string{"a", "b", "c"})
				h.setFail(nil)
				if !errors.Is(err, injected) {
					t.Fatalf("Enqueue = %v, want the injected failure", err)
				}
				if got := ids(h.list()); len(got) != len(tc.before) {
					t.Errorf("after the failed Enqueue the queue holds %v", got)
				}
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				checkConsistent(t, dir)
				h2 := newHarness(t, dir, h.targets, nil)
				q2 := h2.open()
				var want []string
				for _, n := range tc.before {
					want = append(want, "ev1."+n)
				}
				if got := ids(h2.list()); !slices.Equal(got, want) {
					t.Fatalf("after reopening: %v, want %v (what was queued before the failure)", got, want)
				}
				if err := q2.Enqueue(ev, []string{"a", "b", "c"}); err != nil {
					t.Fatal(err)
				}
				if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev1.c"}) {
					t.Fatalf("deliveries after the retry: %v", got)
				}
				_, got, err := q2.Get("ev1.b")
				if err != nil || got.Mail == nil || string(got.Mail.Raw) != string(ev.Mail.Raw) {
					t.Fatalf("event after the retry: %+v, %v", got, err)
				}
				checkConsistent(t, dir)
				if err := q2.Close(); err != nil {
					t.Fatal(err)
				}
				h3 := newHarness(t, dir, h.targets, nil)
				q3 := h3.open()
				if got := ids(h3.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev1.c"}) {
					t.Fatalf("deliveries after the retry and a restart: %v", got)
				}
				if err := q3.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestCommitFailure: the journal's flush is what makes the event file
// durable; if it fails (EIO), the Enqueue fails and queues nothing.
func TestCommitFailure(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"a": &fake{}}, nil)
	q := h.open()
	defer q.Close()
	h.setFail(func(s safeio.Step, path string) error {
		if s == safeio.StepSync && filepath.Base(path) == "ev1.json" {
			return syscall.EIO
		}
		return nil
	})
	err := q.Enqueue(newEvent("ev1"), []string{"a"})
	h.setFail(nil)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Enqueue = %v, want EIO: the event file was not durable", err)
	}
	if got := h.list(); len(got) != 0 {
		t.Fatalf("queued after a failed commit: %v", ids(got))
	}
	if _, err := os.Stat(filepath.Join(dir, eventsDir, "ev1.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("event file of a failed commit: %v", err)
	}
}

// checkConsistent asserts the on-disk invariants: no temporary files, every
// record parses and names an event whose files are complete.
func checkConsistent(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{eventsDir, recordsDir} {
		for _, n := range dirNames(t, filepath.Join(dir, sub)) {
			if strings.HasPrefix(n, safeio.TempPrefix) {
				t.Errorf("temporary file %s/%s left behind", sub, n)
			}
		}
	}
	for _, n := range dirNames(t, filepath.Join(dir, recordsDir)) {
		id := strings.TrimSuffix(n, ".json")
		r, err := readRecord(filepath.Join(dir, recordsDir, n), id)
		if err != nil {
			t.Errorf("record %s: %v", n, err)
			continue
		}
		q := &Queue{dir: dir}
		if _, err := q.readEvent(r.EventID, true); err != nil {
			t.Errorf("record %s names an unreadable event: %v", n, err)
		}
	}
}

func TestRetryAndDrop(t *testing.T) {
	dir := t.TempDir()
	f := &fake{script: []error{target.Permanent(errors.New("550 rejected")), errTemp}}
	h := newHarness(t, dir, map[string]target.Target{"relay": f}, nil)
	q := h.open()
	h.run()
	for _, id := range []string{"ev1", "ev2"} {
		if err := q.Enqueue(newEvent(id), []string{"relay"}); err != nil {
			t.Fatal(err)
		}
	}
	// The target is called for ev1, then ev2; their outcomes are recorded
	// side by side, so they may be reported in either order.
	got := h.outcomesByEvent(2)
	if d := got["ev1"]; d.State != StateDead {
		t.Fatalf("%+v", d)
	}
	if d := got["ev2"]; d.State != StatePending {
		t.Fatalf("%+v", d)
	}
	// Admin ops on what does not exist or cannot be touched.
	if err := q.Retry("nope.relay"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retry(unknown) = %v", err)
	}
	if err := q.Drop("nope.relay"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Drop(unknown) = %v", err)
	}
	// Drop the pending one (its next attempt is a minute away).
	if err := q.Drop("ev2.relay"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Get("ev2.relay"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Drop = %v", err)
	}
	for _, p := range []string{filepath.Join(dir, recordsDir, "ev2.relay.json"), filepath.Join(dir, eventsDir, "ev2.json")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Drop: %v", p, err)
		}
	}
	// Retry the dead one: delivered at once (the clock has not moved, so
	// only the kick can have started it).
	if err := q.Retry("ev1.relay"); err != nil {
		t.Fatal(err)
	}
	if d := h.outcome(); d.ID != "ev1.relay" || d.State != StateDone || d.Attempts != 2 {
		t.Fatalf("after Retry: %+v", d)
	}
	if err := q.Retry("ev1.relay"); err == nil {
		t.Error("Retry of a done delivery accepted")
	}
	if err := q.Drop("ev1.relay"); err == nil {
		t.Error("Drop of a done delivery accepted")
	}
	if l := h.list(); len(l) != 1 || l[0].ID != "ev1.relay" {
		t.Errorf("List = %+v", l)
	}
}

func TestKickRunsDueWorkImmediately(t *testing.T) {
	f := &fake{script: []error{errTemp}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"relay": f}, func(o *Options) {
		o.Backoff = Backoff{Initial: 24 * time.Hour, Max: 48 * time.Hour, Factor: 2}
	})
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	if d := h.outcome(); d.State != StatePending {
		t.Fatalf("%+v", d)
	}
	// The next attempt is a day away; `herald queue retry` must not wait.
	if err := q.Retry("ev1.relay"); err != nil {
		t.Fatal(err)
	}
	if d := h.outcome(); d.State != StateDone {
		t.Fatalf("%+v", d)
	}
}

func TestTimerRunsRetryWithoutKick(t *testing.T) {
	f := &fake{script: []error{errTemp}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"relay": f}, func(o *Options) {
		o.Now = time.Now // real time: the scheduler's own timer must fire
		o.Backoff = Backoff{Initial: time.Second, Max: time.Second, Factor: 1}
	})
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	if d := h.outcome(); d.State != StatePending {
		t.Fatalf("%+v", d)
	}
	start := time.Now()
	if d := h.outcome(); d.State != StateDone {
		t.Fatalf("%+v", d)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("retried after %v, before its backoff of 1s", took)
	}
}

func TestUnknownTargetIsDead(t *testing.T) {
	f := &fake{}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"old": f}, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("ev1"), []string{"old"}); err != nil {
		t.Fatal(err)
	}
	// A reload removed the target before the attempt.
	h.tmu.Lock()
	delete(h.targets, "old")
	h.tmu.Unlock()
	h.run()
	d := h.outcome()
	if d.State != StateDead || d.LastError != "target old no longer exists" {
		t.Fatalf("%+v", d)
	}
	if calls, _ := f.stats(); calls != 0 {
		t.Error("removed target called")
	}
	select {
	case <-h.dead:
	case <-time.After(waitLimit):
		t.Fatal("OnDead not called")
	}
}

func TestPanickingTargetDoesNotKillTheLoop(t *testing.T) {
	f := &fake{panicOn: 1}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"bad": f}, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"bad"}); err != nil {
		t.Fatal(err)
	}
	d := h.outcome()
	if d.State != StatePending || !strings.Contains(d.LastError, "panicked") {
		t.Fatalf("%+v, want a temporary failure", d)
	}
	h.clock.Set(d.NextAttempt)
	q.Kick()
	if d := h.outcome(); d.State != StateDone {
		t.Fatalf("%+v", d)
	}
}

func TestShutdownCancelsStuckAttempts(t *testing.T) {
	f := &fake{block: make(chan struct{})} // never released
	h := newHarness(t, t.TempDir(), map[string]target.Target{"slow": f}, func(o *Options) {
		o.ShutdownGrace = 50 * time.Millisecond
	})
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"slow"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for f.inflight.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("attempt did not start")
		}
		time.Sleep(time.Millisecond)
	}
	h.stop() // fails the test if Run does not return
	if d := h.outcome(); d.State != StatePending {
		t.Errorf("cancelled attempt left %+v, want pending", d)
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
	h2.writeOut()
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

func TestDoneRecordsAreCollected(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	h := newHarness(t, dir, map[string]target.Target{"a": f, "b": f}, nil)
	q := h.open()
	h.run()
	ev := newEvent("ev1")
	ev.Mail = &event.Mail{Raw: []byte("Subject: x\n\nbody\n")}
	if err := q.Enqueue(ev, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	h.outcome()
	h.outcome()
	// Folded into the done log (donelog.go) and kept there; a delivery
	// whose fold failed keeps its files, which TestFoldRemovalFailureKeepsFiles
	// sees collected.
	waitFolded(t, q, "ev1")
	q.gc()
	if l := h.list(); len(l) != 2 || l[0].State != StateDone || l[1].State != StateDone {
		t.Fatalf("right after delivery List = %+v, want both kept", l)
	}
	h.clock.Advance(time.Hour + time.Second)
	q.gc()
	h.writeOut()
	for _, sub := range []string{recordsDir, eventsDir} {
		if got := dirNames(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s still holds %v after the retention", sub, got)
		}
	}
	if l := h.list(); len(l) != 0 {
		t.Errorf("List = %+v", l)
	}
}

func TestStatsAndHealth(t *testing.T) {
	f := &fake{script: []error{target.Permanent(errors.New("no"))}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"a": f, "b": f}, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("ev1"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(10 * time.Minute)
	if s := q.Stats(); s.Pending != 1 || s.OldestPending != 10*time.Minute {
		t.Errorf("Stats = %+v", s)
	}
	// Work due for 10 minutes and no loop turning: unhealthy.
	if q.Healthy(5 * time.Minute) {
		t.Error("Healthy with due work and no scheduler running")
	}
	if !q.Healthy(time.Hour) {
		t.Error("unhealthy within the allowed stall")
	}
	h.run()
	if d := h.outcome(); d.State != StateDead {
		t.Fatalf("%+v", d)
	}
	if !q.Healthy(5 * time.Minute) {
		t.Error("unhealthy with the scheduler running")
	}
	if err := q.Enqueue(newEvent("ev2"), []string{"b"}); err != nil {
		t.Fatal(err)
	}
	h.outcome()
	if s := q.Stats(); s.Pending != 0 || s.Dead != 1 || s.Done != 1 || s.OldestPending != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

// liveRecord reads a delivery's record as the running queue's journal has
// it: held records reach the directory only at a checkpoint.
func (h *harness) liveRecord(id string) (*record, error) {
	b, err := h.q.j.ReadFile(h.q.recordPath(id))
	if err != nil {
		return nil, err
	}
	return parseRecord(b, id)
}

// readRecordFile reads a delivery's durable state: its record file, or,
// once its event was folded, its record in the done log (donelog.go).
func readRecordFile(t *testing.T, dir, id string) *record {
	t.Helper()
	r, err := readRecord(filepath.Join(dir, recordsDir, id+".json"), id)
	if errors.Is(err, fs.ErrNotExist) {
		recs, lerr := readDoneLog(dir)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if r, ok := recs[id]; ok {
			return r
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// firstRecord is the record the first attempt of a delivery that was never
// attempted writes, before its state is set: what a crash test edits to
// stand for the state a crash left on disk.
func firstRecord(t *testing.T, h *harness, id string) *record {
	t.Helper()
	d := h.get(id)
	if d.State != StatePending || d.Attempts != 0 {
		t.Fatalf("%s is %s after %d attempts, want pending and never attempted", id, d.State, d.Attempts)
	}
	if _, err := os.Stat(filepath.Join(h.dir, recordsDir, id+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s has a record file before its first attempt: %v", id, err)
	}
	return &record{EventID: d.EventID, Target: d.Target, State: d.State, Created: d.Created, NextAttempt: d.NextAttempt}
}

// ids returns the delivery IDs of l, in its order.
func ids(l []Delivery) []string {
	var out []string
	for _, d := range l {
		out = append(out, d.ID)
	}
	return out
}

// listedNames returns the target list of an event file on disk.
func listedNames(t *testing.T, dir, eventID string) []string {
	t.Helper()
	ef, err := (&Queue{dir: dir}).readEventFile(eventID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ef.Targets {
		out = append(out, l.Name)
	}
	return out
}

func writeRecordFile(t *testing.T, dir string, r *record) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, recordsDir, deliveryID(r.EventID, r.Target)+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// nop is the cheapest possible target.
type nop struct{}

func (nop) Deliver(context.Context, *event.Event) error { return nil }

// BenchmarkQueueThroughput enqueues events for 1 or 8 no-op targets and
// waits until every delivery is done: the cost is the queue's own durable
// writes (event, records, in-flight and outcome per attempt).
func BenchmarkQueueThroughput(b *testing.B) {
	for _, nTargets := range []int{1, 8} {
		b.Run(fmt.Sprintf("targets=%d", nTargets), func(b *testing.B) {
			var names []string
			for i := range nTargets {
				names = append(names, fmt.Sprint("t", i))
			}
			var done, want atomic.Int64
			all := make(chan struct{})
			var closeOnce sync.Once
			finished := func() { closeOnce.Do(func() { close(all) }) }
			want.Store(-1)
			q, err := Open(Options{
				Dir:    b.TempDir(),
				Target: func(string) (target.Target, bool) { return nop{}, true },
				OnOutcome: func(d Delivery, err error) {
					if done.Add(1) == want.Load() {
						finished()
					}
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- q.Run(ctx) }()
			b.ResetTimer()
			start := time.Now()
			n := 0
			for b.Loop() {
				if err := q.Enqueue(newEvent(fmt.Sprint("ev", n)), names); err != nil {
					b.Fatal(err)
				}
				n++
			}
			total := int64(n * nTargets)
			want.Store(total)
			if done.Load() >= total {
				finished()
			}
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("only %d of %d deliveries done", done.Load(), total)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(total)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
			cancel()
			if err := <-ran; err != nil {
				b.Fatal(err)
			}
			if err := q.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// probe is a target that looks at its own delivery record, as the queue's
// journal has it (held or on disk), while Deliver runs.
type probe struct {
	dir  string
	seen chan *record
	j    *safeio.Journal
}

func (p *probe) Deliver(ctx context.Context, ev *event.Event) error {
	id := ev.ID + ".p"
	b, err := p.j.ReadFile(filepath.Join(p.dir, recordsDir, id+".json"))
	if err != nil {
		return target.Permanent(err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || deliveryID(r.EventID, r.Target) != id {
		return target.Permanent(fmt.Errorf("record %s: %v", id, err))
	}
	p.seen <- &r
	return nil
}

func TestAttemptIsRecordedBeforeItIsMade(t *testing.T) {
	dir := t.TempDir()
	p := &probe{dir: dir, seen: make(chan *record, 1)}
	h := newHarness(t, dir, map[string]target.Target{"p": p}, nil)
	q := h.open()
	p.j = q.j
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

// mailSeer records whether the event it got carried the raw mail.
type mailSeer struct {
	mu  sync.Mutex
	got []bool
}

func (m *mailSeer) Deliver(_ context.Context, ev *event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, ev.Mail != nil && len(ev.Mail.Raw) > 0)
	return nil
}

type blindSeer struct{ *mailSeer }

func (blindSeer) IgnoresMail() bool { return true }

// A target that declares it never reads the raw mail (target.MailBlind) is
// handed the event without it, so a 50 MB mail is not loaded for a file or
// webhook target; every other target gets the mail.
func TestMailNotLoadedForMailBlindTargets(t *testing.T) {
	seer, blind := &mailSeer{}, blindSeer{&mailSeer{}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"mbox": seer, "file": blind}, nil)
	q := h.open()
	h.run()
	ev := newEvent("ev1")
	ev.Mail = &event.Mail{Raw: []byte("Subject: x\n\nbody\n"), From: "a@b"}
	if err := q.Enqueue(ev, []string{"mbox", "file"}); err != nil {
		t.Fatal(err)
	}
	h.outcome()
	h.outcome()
	if seer.got == nil || !seer.got[0] {
		t.Errorf("the mail-reading target did not get the mail: %v", seer.got)
	}
	if blind.got == nil || blind.got[0] {
		t.Errorf("the mail-blind target got the mail loaded: %v", blind.got)
	}
}
