package delivery

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"herald/internal/target"
)

// While one event's Enqueue holds its lock (as it does across its durable
// write), no Enqueue of another event waits, and a second Enqueue of the
// same event takes its turn. The lock is held directly: the journal's
// failure hook runs in its one committer, where blocking would stall every
// writer by design.
func TestEnqueueOfOneEventDoesNotWaitForAnother(t *testing.T) {
	h := newHarness(t, t.TempDir(), map[string]target.Target{"a": nop{}}, nil)
	q := h.open()
	defer q.Close()
	if err := q.Enqueue(newEvent("held"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	unlock := sync.OnceFunc(q.eventMu.lock("held"))
	defer unlock()

	others := make(chan error, 300)
	// 300 events: under the striped locks this replaced (64 stripes), four
	// of them shared the held event's stripe.
	for i := range 300 {
		go func() { others <- q.Enqueue(newEvent(fmt.Sprint("ev", i)), []string{"a"}) }()
	}
	for range 300 {
		select {
		case err := <-others:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitLimit):
			t.Fatal("an Enqueue of another event waited for the held one")
		}
	}
	again := make(chan error, 1)
	go func() { again <- q.Enqueue(newEvent("held"), []string{"a", "b"}) }()
	select {
	case <-again:
		t.Fatal("a second Enqueue of the held event did not wait for the first")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	for _, ch := range []chan error{again} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitLimit):
			t.Fatal("the held event's Enqueue calls did not finish")
		}
	}
	if d := h.get("held.b"); d.State != StatePending {
		t.Errorf("held.b: %+v", d)
	}
	q.eventMu.mu.Lock()
	n := len(q.eventMu.m)
	q.eventMu.mu.Unlock()
	if n != 0 {
		t.Errorf("%d event locks left behind", n)
	}
}
