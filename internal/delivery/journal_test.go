package delivery

import (
	"fmt"
	"os"
	"testing"
	"time"

	"herald/internal/target"
)

// Attempts that run at the same time share the journal's commits: their
// in-flight and outcome records do not cost one flush each (one slow disk
// write no longer serialises every target).
func TestConcurrentAttemptsShareCommits(t *testing.T) {
	const nTargets, nEvents = 8, 20
	targets := map[string]target.Target{}
	var names []string
	for i := range nTargets {
		n := fmt.Sprint("t", i)
		names = append(names, n)
		targets[n] = &fake{hold: time.Millisecond}
	}
	h := newHarness(t, t.TempDir(), targets, func(o *Options) {
		o.Concurrency = nTargets
		o.journalSync = func(f *os.File) error {
			time.Sleep(time.Millisecond) // a disk flush, even on tmpfs
			return f.Sync()
		}
	})
	q := h.open()
	for i := range nEvents {
		if err := q.Enqueue(newEvent(fmt.Sprint("ev", i)), names); err != nil {
			t.Fatal(err)
		}
	}
	before := q.j.Stats()
	h.run()
	deadline := time.After(waitLimit)
	for range nTargets * nEvents {
		select {
		case d := <-h.outcomes:
			if d.State != StateDone {
				t.Fatalf("outcome %+v", d)
			}
		case <-deadline:
			t.Fatal("deliveries did not finish")
		}
	}
	st := q.j.Stats()
	ops, commits := st.Ops-before.Ops, st.Commits-before.Commits
	// Two records per attempt; at least the outcome of the last attempt of
	// each target may still be on its way.
	if ops < 2*nTargets*nEvents-nTargets {
		t.Fatalf("%d record writes for %d attempts", ops, nTargets*nEvents)
	}
	if commits > ops/3 {
		t.Errorf("%d record writes took %d commits: attempts running together should share them", ops, commits)
	}
	t.Logf("%d record writes, %d commits", ops, commits)
}
