package delivery

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"herald/internal/event"
	"herald/internal/mmapfile"
	"herald/internal/target"
)

// This file holds batch delivery for targets that can append many events
// at once (target.Batcher: file, mbox). An attempt whose turn comes takes
// along the attempts dispatched directly behind it that have already
// recorded themselves in flight and wait for their turn, calls the target
// once for all of them, and hands each its own result; each then records
// its outcome exactly as if it had called the target itself. Locking:
// a target's slots (targetQ.waiting) and their states are guarded by q.mu;
// a slot's result is written by the attempt that took it along and read by
// its own attempt only after done is closed.

const (
	// batchMax bounds the attempts one call of a target carries.
	batchMax = 64
	// batchMaxMail bounds the raw mail one call holds loaded: a batch
	// whose mails reach it is split into several calls.
	batchMaxMail = 32 << 20
)

type slotState int

const (
	slotRecording slotState = iota // dispatched, not yet recorded in flight
	slotReady                      // recorded, waiting for its turn: may be taken along
	slotClaimed                    // taken along by the attempt ahead of it
	slotLeft                       // called the target itself, gave up or ended early
)

// batchSlot is the place of an attempt of a Batcher target among that
// target's attempts in dispatch order.
type batchSlot struct {
	tq      *targetQ
	eventID string
	ev      *event.Event // the event without its mail; set when ready
	state   slotState
	// claimed is closed when an attempt ahead takes this one along; done
	// once res holds the outcome of the call.
	claimed, done chan struct{}
	res           batchResult
}

// batchResult is what one call of a target did for one attempt.
type batchResult struct {
	err error
	// unreadable: the raw mail could not be loaded, the target was not
	// called for this attempt.
	unreadable error
	ev         *event.Event // the event as handed to the target (with its mail)
	took       time.Duration
}

// turnOutcome is how an attempt's wait for its turn ended.
type turnOutcome int

const (
	turnMine    turnOutcome = iota // call the target (for the attempts taken along, too)
	turnClaimed                    // an attempt ahead calls the target for this one
	turnStopped                    // shut down before its turn came
)

// newSlot gives an attempt of tq a place behind the ones dispatched
// before it. Caller holds mu.
func newSlot(tq *targetQ, eventID string) *batchSlot {
	s := &batchSlot{tq: tq, eventID: eventID, claimed: make(chan struct{}), done: make(chan struct{})}
	tq.waiting = append(tq.waiting, s)
	return s
}

// slotReadyFor marks s recorded in flight: an attempt ahead may now take
// it along.
func (q *Queue) slotReadyFor(s *batchSlot, ev *event.Event) {
	if s == nil {
		return
	}
	q.mu.Lock()
	if s.state == slotRecording {
		s.ev, s.state = ev, slotReady
	}
	q.mu.Unlock()
}

// leaveSlot takes s out of its target's slots, if it is still there.
func (q *Queue) leaveSlot(s *batchSlot) {
	if s == nil {
		return
	}
	q.mu.Lock()
	q.dropSlot(s)
	q.mu.Unlock()
}

// dropSlot is leaveSlot with mu held.
func (q *Queue) dropSlot(s *batchSlot) {
	if i := slices.Index(s.tq.waiting, s); i >= 0 {
		s.tq.waiting = slices.Delete(s.tq.waiting, i, i+1)
	}
	if s.state != slotClaimed {
		s.state = slotLeft
	}
}

// waitTurn waits until the attempt may call the target, an attempt ahead
// takes it along, or the queue shuts down. An attempt whose turn came and
// that may batch takes along, in t.members, the ready attempts directly
// behind it (not while the queue shuts down: they give up instead, as
// without batches).
func (q *Queue) waitTurn(t *turn, batches bool) turnOutcome {
	s := t.slot
	if s == nil {
		if t.wait() {
			return turnMine
		}
		return turnStopped
	}
	mine := t.prev == nil
	if !mine {
		select {
		case <-t.prev:
			mine = true
		default:
			select {
			case <-t.prev:
				mine = true
			case <-t.stop:
			case <-s.claimed:
			}
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.state == slotClaimed {
		return turnClaimed
	}
	if !mine {
		q.dropSlot(s)
		return turnStopped
	}
	t.taken = true
	t.members = []*batchSlot{s}
	stopping := false
	select {
	case <-t.stop:
		stopping = true
	default:
	}
	if i := slices.Index(s.tq.waiting, s); batches && !stopping && i >= 0 {
		for _, f := range s.tq.waiting[i+1:] {
			if f.state != slotReady || len(t.members) == batchMax {
				break
			}
			f.state = slotClaimed
			close(f.claimed)
			t.members = append(t.members, f)
		}
	}
	for _, m := range t.members {
		q.dropSlot(m)
	}
	return turnMine
}

// deliverBatch calls b for members (the caller's own slot first, then
// those it took along, in dispatch order), loading each one's raw mail
// when the target reads it, and leaves each member's result in its slot.
// A batch whose mails reach batchMaxMail is carried by several calls.
// The members taken along learn their results when it returns.
func (q *Queue) deliverBatch(ctx context.Context, b target.Batcher, withMail bool, members []*batchSlot) {
	for _, m := range members {
		m.res = batchResult{err: target.Temporary(errors.New("batch delivery did not finish"), 0)}
	}
	defer func() {
		for _, m := range members[1:] {
			close(m.done)
		}
	}()
	for next := 0; next < len(members); {
		var (
			evs    []*event.Event
			in     []*batchSlot
			maps   []*mmapfile.Mapping
			loaded int
		)
		for ; next < len(members) && (len(in) == 0 || loaded < batchMaxMail); next++ {
			m := members[next]
			ev := m.ev
			var mapped *mmapfile.Mapping
			if withMail {
				// Loaded only now, in the target's turn (see attempt).
				full, mp, err := q.readEventToDeliver(m.eventID, true)
				if err != nil {
					m.res = batchResult{unreadable: err}
					continue
				}
				ev, mapped = full, mp
				if ev.Mail != nil {
					loaded += len(ev.Mail.Raw)
				}
			}
			evs, in, maps = append(evs, ev), append(in, m), append(maps, mapped)
		}
		if len(in) == 0 {
			continue
		}
		t0 := time.Now()
		errs := q.callBatch(ctx, b, evs)
		took := time.Since(t0)
		for i, m := range in {
			q.unmapMail(evs[i], maps[i]) // the target is done with the mail
			m.res = batchResult{err: errs[i], ev: evs[i], took: took}
		}
	}
}

// callBatch is deliver for a batch: one result per event, whatever the
// target does.
func (q *Queue) callBatch(ctx context.Context, b target.Batcher, evs []*event.Event) (errs []error) {
	ctx, cancel := context.WithTimeout(ctx, q.opt.AttemptTimeout)
	defer cancel()
	all := func(err error) []error {
		errs := make([]error, len(evs))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	// A mapped mail whose file was truncated faults when read: a panic
	// here, like any other, rather than a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			ids := make([]string, len(evs))
			for i, ev := range evs {
				ids[i] = ev.ID
			}
			q.log.Error("target panicked", "event_ids", ids, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			errs = all(target.Temporary(fmt.Errorf("target panicked: %v", r), 0))
		}
	}()
	errs = b.DeliverBatch(ctx, evs)
	if len(errs) != len(evs) {
		return all(target.Temporary(fmt.Errorf("target answered %d results for %d events", len(errs), len(evs)), 0))
	}
	return errs
}
