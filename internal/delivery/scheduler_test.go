package delivery

// Tests of the scheduler: retries, backoff, bounds, the loop's robustness (scheduler.go).

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/target"
)

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
