package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"herald/internal/spool"
)

// A mail that arrives while the pick-up is busy with a slow entry is
// picked up at once, by a free worker, not after the slow entry is done:
// a pass takes in what the spool signals while it runs.
func TestPassTakesInEntriesSignalledWhileItRuns(t *testing.T) {
	a, _ := newEmbeddedApp(t)
	slow := submitMail(t, a, "Subject: slow\r\n\r\nx\r\n")
	blocked := make(chan struct{})
	release := make(chan struct{})
	a.beforeEnqueue = func(e spool.Entry) {
		if e.ID == slow {
			select {
			case <-blocked:
			default:
				close(blocked)
			}
			<-release
		}
	}
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()

	wake := make(chan struct{}, 1)
	type result struct {
		failed map[string]error
		again  bool
	}
	done := make(chan result, 1)
	go func() {
		f, again := a.ingestPending(context.Background(), wake)
		done <- result{f, again}
	}()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow entry was not picked up within 10 s")
	}

	fast := submitMail(t, a, "Subject: fast\r\n\r\nx\r\n")
	wake <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for !queued(t, a, fast) {
		if time.Now().After(deadline) {
			t.Fatal("the mail that came during the pass waited for the slow entry (not queued within 10 s)")
		}
		time.Sleep(time.Millisecond)
	}
	if queued(t, a, slow) {
		t.Fatal("the slow entry was queued although it is held")
	}

	unblock()
	select {
	case r := <-done:
		if len(r.failed) != 0 {
			t.Errorf("failed entries: %v", r.failed)
		}
		if r.again {
			t.Error("the pass asks for another although no signal came after it stopped taking entries in")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pass did not end within 10 s of the slow entry's release")
	}
	if !queued(t, a, slow) {
		t.Error("the slow entry was not queued")
	}
	if left, _ := a.spool.Pending(); len(left) != 0 {
		t.Errorf("entries left in the spool: %v", left)
	}
}

// queued reports whether a delivery of the event made from spool entry id
// is in the queue.
func queued(t *testing.T, a *App, id string) bool {
	t.Helper()
	ds, err := a.queue.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.EventID == id {
			return true
		}
	}
	return false
}

// The entries processed at once hold at most ingestBytes of mail between
// them (one is always taken): with room for one, they queue one after the
// other; with room for all, side by side.
func TestIngestBoundsTheBytesInProcess(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bytes   int64
		wantMax func(int32) bool
	}{
		{"room for one", 6000, func(m int32) bool { return m == 1 }},
		{"room for all", 64 << 20, func(m int32) bool { return m > 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(b int64) { ingestBytes = b }(ingestBytes)
			ingestBytes = tc.bytes
			a, _ := newEmbeddedApp(t)
			for i := range 6 {
				submitMail(t, a, fmt.Sprintf("Subject: m%d\r\n\r\n%s\r\n", i, strings.Repeat("x", 4000)))
			}
			var cur, most atomic.Int32
			a.beforeEnqueue = func(spool.Entry) {
				n := cur.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(20 * time.Millisecond) // widens the window; synchronises nothing
				cur.Add(-1)
			}
			if failed, _ := a.ingestPending(context.Background(), nil); len(failed) != 0 {
				t.Fatalf("failed: %v", failed)
			}
			if left, _ := a.spool.Pending(); len(left) != 0 {
				t.Fatalf("%d entries left", len(left))
			}
			if m := most.Load(); !tc.wantMax(m) {
				t.Errorf("ingestBytes %d: %d entries were queued at once", tc.bytes, m)
			}
		})
	}
}
