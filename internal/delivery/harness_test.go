package delivery

// The test harness of the queue's tests: a clock, scriptable fake targets
// and a queue opened on a temporary directory.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/testkit"
)

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
	if tweak != nil {
		tweak(&h.opt)
	}
	return h
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

func readRecordFile(t *testing.T, dir, id string) *record {
	t.Helper()
	r, err := readRecord(filepath.Join(dir, recordsDir, id+".json"), id)
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

const waitLimit = 10 * time.Second

var errTemp = target.Temporary(errors.New("451 4.3.0 try again later"), 0)

func (nop) Deliver(context.Context, *event.Event) error { return nil }
