package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"herald/internal/target"
)

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
