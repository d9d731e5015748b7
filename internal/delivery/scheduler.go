package delivery

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"herald/internal/target"
)

// This file holds the scheduler: Run's loop, dispatching due deliveries
// within the per-class bounds and each target's pipeline (the attempt itself
// is attempt.go's) and the heaps of due work. Locking: q.mu guards the
// entries, the per-target heaps and the counts; it is never held while a
// target is called or a record is written. The order in which one target's
// attempts call it is kept by a chain of channels, not by a lock: each
// attempt waits for the turn channel of the one dispatched before it and
// closes its own when it is done with the target.

// Kick makes the scheduler look for due work now (new work, `sendmail -q`,
// `herald queue retry`). It never blocks.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Flush makes every pending delivery due now, as Postfix's `sendmail -q`
// (postqueue -f) does with deferred mail, and kicks the scheduler. Dead
// deliveries stay dead (`herald queue retry` revives one). Only the
// in-memory schedule changes: the next attempt's record is written as any
// attempt's is, and a crash before it leaves the recorded schedule.
func (q *Queue) Flush() int {
	q.mu.Lock()
	now := q.now()
	n := 0
	for _, tq := range q.targets {
		for _, e := range tq.pending {
			if e.rec.NextAttempt.After(now) {
				e.rec.NextAttempt = now
				n++
			}
		}
		heap.Init(&tq.pending)
	}
	q.mu.Unlock()
	if n > 0 {
		q.log.Info("queue flush requested: deferred deliveries are due now", "deliveries", n)
	}
	q.Kick()
	return n
}

// Run is the scheduler loop. It returns nil once ctx is done and the
// attempts in flight have finished: they get ShutdownGrace to finish on
// their own, then their contexts are cancelled. Run may run only once at a
// time.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.running {
		q.mu.Unlock()
		return errors.New("delivery: Run called twice")
	}
	q.running = true
	var unnotified []*entry
	for _, e := range q.entries {
		if e.rec.State == StateDead && !e.rec.DeadNotified {
			unnotified = append(unnotified, e)
		}
	}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.running = false
		q.mu.Unlock()
	}()

	// Attempts outlive ctx by up to ShutdownGrace, so a shutdown does not
	// cut a delivery that is about to succeed (and repeat it later).
	attemptCtx, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()
	var wg sync.WaitGroup

	// Dead deliveries whose OnDead did not run before the last stop.
	for _, e := range unnotified {
		q.mu.Lock()
		d := e.delivery()
		q.mu.Unlock()
		q.notifyDead(e, d)
	}

	// The folder moves delivered events into the done log (donelog.go).
	stopFolder := make(chan struct{})
	var folderDone sync.WaitGroup
	folderDone.Go(func() { q.folder(stopFolder) })
	defer func() {
		close(stopFolder)
		folderDone.Wait()
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	gc := time.NewTicker(gcInterval)
	defer gc.Stop()
	for {
		wait := q.dispatch(attemptCtx, ctx.Done(), &wg)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			q.drain(&wg, cancelAttempts)
			return nil
		case <-q.kick:
		case <-timer.C:
		case <-gc.C:
			q.gc()
		}
	}
}

// drain waits for the attempts in flight at shutdown.
func (q *Queue) drain(wg *sync.WaitGroup, cancel context.CancelFunc) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(q.opt.ShutdownGrace):
	}
	q.log.Warn("cancelling deliveries still in flight at shutdown")
	cancel()
	select {
	case <-done:
	case <-time.After(q.opt.ShutdownGrace):
		// A target that ignores its context: its record stays in flight on
		// disk, exactly as after a crash, and the next start resolves it.
		q.log.Error("deliveries ignored cancellation; leaving them to crash recovery")
	}
}

// dispatch starts every attempt that is due and allowed, and returns how
// long until the next one is due (-1: nothing to wait for but a kick).
// Attempts waiting for their turn give up when stop is closed (shutdown).
//
// A target without attempts in flight needs a slot of its class; one that
// has some fills its pipeline (depth) without another slot,
// unless targets of its class wait for a slot: then it is left to drain
// and give its slot up, so that a long backlog for one target does not
// keep the others waiting.
func (q *Queue) dispatch(ctx context.Context, stop <-chan struct{}, wg *sync.WaitGroup) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	q.lastTurn = now
	// Targets with due work, most overdue first. Each round starts one
	// attempt per target, so slots go to the most overdue and pipelines
	// fill evenly.
	var due []*targetQ
	var idle [2]int // due targets without a slot, per class (remote, local)
	for _, tq := range q.targets {
		if q.ready(tq, now) {
			due = append(due, tq)
			if tq.inflight == 0 {
				idle[classIndex(q.isLocal(tq.name))]++
			}
		}
	}
	var starved [2]bool // some target of the class waits for a slot
	for c, local := range []bool{false, true} {
		starved[c] = idle[c] > q.freeSlots(local)
	}
	slices.SortFunc(due, func(a, b *targetQ) int {
		return cmp.Or(a.pending[0].rec.NextAttempt.Compare(b.pending[0].rec.NextAttempt), cmp.Compare(a.name, b.name))
	})
	for len(due) > 0 {
		next := due[:0]
		for _, tq := range due {
			if tq.inflight == 0 {
				local := q.isLocal(tq.name)
				if q.freeSlots(local) == 0 {
					continue // the other class may still have a slot
				}
				tq.local = local
				*q.busyCount(local)++
			} else if starved[classIndex(tq.local)] {
				continue // drains and gives its slot up
			}
			q.start(ctx, stop, wg, tq)
			if q.ready(tq, now) {
				next = append(next, tq)
			}
		}
		due = next
	}
	wait := time.Duration(-1)
	for _, tq := range q.targets {
		if tq.inflight >= q.depth(tq) || len(tq.pending) == 0 {
			continue // a finishing attempt kicks
		}
		if tq.inflight == 0 && q.freeSlots(q.isLocal(tq.name)) == 0 || tq.inflight > 0 && starved[classIndex(tq.local)] {
			continue // a finishing attempt kicks
		}
		d := max(tq.pending[0].rec.NextAttempt.Sub(now), 0)
		if wait < 0 || d < wait {
			wait = d
		}
	}
	return wait
}

// ready reports whether tq has a due delivery and room in its pipeline.
// Caller holds mu.
func (q *Queue) ready(tq *targetQ, now time.Time) bool {
	return tq.inflight < q.depth(tq) && len(tq.pending) > 0 && !tq.pending[0].rec.NextAttempt.After(now)
}

// depth is how many attempts tq may have in flight: its class's pipeline
// depth while it holds a slot (any target may start one without). Caller
// holds mu.
func (q *Queue) depth(tq *targetQ) int {
	switch {
	case tq.inflight == 0:
		return 1
	case tq.local:
		return q.opt.LocalDepth
	default:
		return q.opt.TargetDepth
	}
}

// start dispatches tq's earliest delivery behind the attempt dispatched
// before it; tq holds its slot. Caller holds mu.
func (q *Queue) start(ctx context.Context, stop <-chan struct{}, wg *sync.WaitGroup, tq *targetQ) {
	e := heap.Pop(&tq.pending).(*entry)
	prev := e.rec
	e.rec.State = StateInflight
	e.onDisk = true // every attempt writes its record
	tq.inflight++
	t := turn{prev: tq.turn, stop: stop, mine: make(chan struct{})}
	tq.turn = t.mine
	if tg, ok := q.opt.Target(tq.name); ok {
		if _, ok := tg.(target.Batcher); ok {
			t.slot = newSlot(tq, prev.EventID) // batch.go
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer t.pass()
		q.attempt(ctx, e, prev, &t)
	}()
}

// turn is an attempt's place in its target's pipeline: it may call the
// target once prev is closed, and closes mine when it is done with it.
type turn struct {
	prev <-chan struct{} // nil: nothing before it
	stop <-chan struct{}
	mine chan struct{}
	// taken: the attempt waited for prev; passed: mine is closed.
	taken, passed bool
	// slot is the attempt's place among those a batch may take along (a
	// Batcher target's; nil otherwise); members, once its turn came, the
	// attempts it delivers for, its own first (batch.go).
	slot    *batchSlot
	members []*batchSlot
}

// wait blocks until the attempt may call the target, and reports false
// when the queue shuts down first.
func (t *turn) wait() bool {
	if t.prev == nil {
		t.taken = true
		return true
	}
	select {
	case <-t.prev:
		t.taken = true
		return true
	default:
	}
	select {
	case <-t.prev:
		t.taken = true
		return true
	case <-t.stop:
		return false
	}
}

// pass hands the target to the next attempt. An attempt that never called
// the target (it failed before, or shut down while waiting) hands it on
// only once the attempt before it is done, so the order holds.
func (t *turn) pass() {
	if t.passed {
		return
	}
	t.passed = true
	if t.taken || t.prev == nil {
		close(t.mine)
		return
	}
	go func() {
		<-t.prev
		close(t.mine)
	}()
}

// isLocal reports whether the named target delivers locally (target.Local)
// and so takes a local slot. Caller holds mu.
func (q *Queue) isLocal(name string) bool {
	tg, ok := q.opt.Target(name)
	return ok && target.IsLocal(tg)
}

// classIndex numbers the classes: 0 remote, 1 local.
func classIndex(local bool) int {
	if local {
		return 1
	}
	return 0
}

// busyCount returns the count of targets holding a slot of the class.
// Caller holds mu.
func (q *Queue) busyCount(local bool) *int {
	if local {
		return &q.busyLocal
	}
	return &q.busy
}

// freeSlots returns how many targets of the class may still start
// delivering. Caller holds mu.
func (q *Queue) freeSlots(local bool) int {
	bound := q.opt.Concurrency
	if local {
		bound = q.opt.LocalConcurrency
	}
	return max(bound-*q.busyCount(local), 0)
}

// push adds a pending entry to its target's heap. Caller holds mu.
func (q *Queue) push(e *entry) {
	tq := q.targets[e.rec.Target]
	if tq == nil {
		tq = &targetQ{name: e.rec.Target}
		q.targets[e.rec.Target] = tq
	}
	heap.Push(&tq.pending, e)
}

// remove takes e out of its target's heap if it is there. Caller holds mu.
func (q *Queue) remove(e *entry) {
	if e.idx < 0 {
		return
	}
	if tq := q.targets[e.rec.Target]; tq != nil {
		heap.Remove(&tq.pending, e.idx)
	}
}

// entryHeap orders pending entries by next attempt, then age, then ID.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	a, b := &h[i].rec, &h[j].rec
	return cmp.Or(a.NextAttempt.Compare(b.NextAttempt), a.Created.Compare(b.Created), cmp.Compare(h[i].id, h[j].id)) < 0
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.idx = -1
	*h = old[:len(old)-1]
	return e
}
