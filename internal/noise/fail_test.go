package noise

import (
	"errors"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/safeio"
)

// TestWriteFailures: at every step of a state write that can fail, Process
// reports the error and decides nothing (the caller keeps the spool entry
// and tries again), and the next attempt after the disk recovers records
// the decision exactly once. Not parallel: FailHook is process-wide.
func TestWriteFailures(t *testing.T) {
	for _, step := range []safeio.Step{safeio.StepCreate, safeio.StepWrite, safeio.StepSync, safeio.StepRename} {
		t.Run(string(step), func(t *testing.T) {
			dir := t.TempDir()
			c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
			q := &fakeQueue{}
			cfg := parse(t, "noise: nights\n\tmatch-field exact:type=cron\n\tquiet-hours 22:00-07:00\n\nnoise: flood\n\tmatch-field exact:type=flood\n\tdedup-window 1h\n")
			e := open(t, dir, q, c)
			x := ev("cron", event.Info, "held", c.t)
			f := ev("flood", event.Info, "first", c.t)
			safeio.FailHook = func(s safeio.Step, _ string) error {
				if s == step {
					return errors.New("no space left on device")
				}
				return nil
			}
			_, _, err1 := e.Process(cfg, x, []string{"ta"})
			_, _, err2 := e.Process(cfg, f, []string{"ta"})
			safeio.FailHook = nil
			if err1 == nil || err2 == nil {
				t.Fatalf("write failures not reported: %v, %v", err1, err2)
			}
			if items := e.Items(); len(items) != 0 {
				t.Fatalf("recorded despite the failure: %+v", items)
			}
			// After a restart (the failed write left at most a temporary
			// file) and with the disk back, the same events are decided.
			e = open(t, dir, q, c)
			if ds := process(t, e, cfg, q, x, "ta"); ds[0].Action != ActHold {
				t.Fatalf("retry: %+v", ds)
			}
			if ds := process(t, e, cfg, q, f, "ta"); ds[0].Action != ActDeliver {
				t.Fatalf("retry: %+v", ds)
			}
			c.t = c.t.Add(9 * time.Hour)
			e.Release()
			if got := titles(q.events()); len(got) != 2 {
				t.Fatalf("delivered %v", got)
			}
		})
	}
}
