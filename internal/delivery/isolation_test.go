package delivery

import (
	"fmt"
	"testing"
	"time"

	"herald/internal/target"
)

// localFake is a fake that declares itself local (target.Local).
type localFake struct{ *fake }

func (localFake) IsLocal() bool { return true }

// TestLocalTargetsNeverWaitBehindHangingRemoteOnes: with every remote slot
// taken by targets that hang, deliveries to local targets still run at
// once, within their own bound; the remote bound still holds.
func TestLocalTargetsNeverWaitBehindHangingRemoteOnes(t *testing.T) {
	const remotes, locals = 4, 3
	block := make(chan struct{})
	remoteCount, localCount := &counter{}, &counter{}
	targets := map[string]target.Target{}
	var names []string
	for i := range remotes {
		n := fmt.Sprint("a-remote", i) // sorted first: dispatched first
		targets[n] = &fake{name: n, block: block, global: remoteCount}
		names = append(names, n)
	}
	var localFakes []*fake
	for i := range locals {
		n := fmt.Sprint("z-local", i)
		f := &fake{name: n, hold: 5 * time.Millisecond, global: localCount}
		localFakes = append(localFakes, f)
		targets[n] = localFake{f}
		names = append(names, n)
	}
	h := newHarness(t, t.TempDir(), targets, func(o *Options) {
		o.Concurrency = remotes
		o.LocalConcurrency = 2
		o.AttemptTimeout = time.Minute // the remote ones hang far longer than the test waits
	})
	defer close(block)
	q := h.open()
	h.run()
	for i := range 3 {
		if err := q.Enqueue(newEvent(fmt.Sprint("ev", i)), names); err != nil {
			t.Fatal(err)
		}
	}
	// Every local delivery completes while all remote ones hang.
	start := time.Now()
	for range locals * 3 {
		select {
		case d := <-h.outcomes:
			if d.State != StateDone {
				t.Fatalf("local delivery %+v", d)
			}
		case <-time.After(waitLimit):
			t.Fatalf("local deliveries waited behind %d hanging remote targets for %v", remotes, waitLimit)
		}
	}
	t.Logf("%d local deliveries done in %v while %d remote targets hang", locals*3, time.Since(start), remotes)
	for _, f := range localFakes {
		if _, delivered := f.stats(); len(delivered) != 3 {
			t.Errorf("%s got %d deliveries, want 3", f.name, len(delivered))
		}
	}
	if m := localCount.max.Load(); m > 2 {
		t.Errorf("%d local attempts in flight at once, bound is 2", m)
	}
	if m := remoteCount.max.Load(); m != remotes {
		t.Errorf("%d remote attempts in flight at once, want the bound %d", m, remotes)
	}
}

// TestFlushMakesDeferredDeliveriesDue: `sendmail -q` (Flush) makes a
// delivery backed off after a temporary failure due at once; a dead one
// stays dead.
func TestFlushMakesDeferredDeliveriesDue(t *testing.T) {
	f := &fake{script: []error{target.Temporary(errTest("503"), 0)}}
	g := &fake{script: []error{target.Permanent(errTest("400"))}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"a": f, "b": g}, nil)
	q := h.open()
	h.run()
	if err := q.Enqueue(newEvent("ev1"), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		h.outcome()
	}
	if d := h.get("ev1.a"); d.State != StatePending || !d.NextAttempt.After(h.clock.Now()) {
		t.Fatalf("after a temporary failure: %+v", d)
	}
	if n := q.Flush(); n != 1 {
		t.Errorf("Flush = %d, want 1 deferred delivery", n)
	}
	if d := h.outcome(); d.ID != "ev1.a" || d.State != StateDone {
		t.Fatalf("after Flush: %+v, want ev1.a done", d)
	}
	if d := h.get("ev1.b"); d.State != StateDead {
		t.Errorf("a dead delivery was revived: %+v", d)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
