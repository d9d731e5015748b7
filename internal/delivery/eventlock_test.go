package delivery

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/safeio"
	"herald/internal/target"
)

// An Enqueue whose write is slow (a held fsync) delays no Enqueue of
// another event, and two of the same event still take turns.
func TestEnqueueOfOneEventDoesNotWaitForAnother(t *testing.T) {
	h := newHarness(t, t.TempDir(), map[string]target.Target{"a": nop{}}, nil)
	q := h.open()
	defer q.Close()
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	safeio.FailHook = func(step safeio.Step, path string) error {
		if step == safeio.StepCreate && strings.Contains(path, "held") {
			once.Do(func() { close(held) })
			<-release
		}
		return nil
	}
	defer func() { safeio.FailHook = nil }()
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()

	heldDone := make(chan error, 1)
	go func() { heldDone <- q.Enqueue(newEvent("held"), []string{"a"}) }()
	<-held
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
	unblock()
	for _, ch := range []chan error{heldDone, again} {
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
