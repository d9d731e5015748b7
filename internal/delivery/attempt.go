package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"herald/internal/event"
	"herald/internal/mmapfile"
	"herald/internal/target"
)

// This file holds one delivery attempt: recorded in flight before the
// target is called (in its turn, see scheduler.go), the outcome after, and
// what a dead letter sets off (the delivery-failed event). The locking
// story is scheduler.go's: q.mu is never held while a target is called or
// a record is written.

// attempt runs one delivery attempt; prev is the record before dispatch.
// The target is called only in its turn (t); for a target.Batcher, by the
// attempt whose turn it is for the attempts it takes along (batch.go).
func (q *Queue) attempt(ctx context.Context, e *entry, prev record, t *turn) {
	log := q.log.With("event_id", prev.EventID, "delivery_id", e.id, "target", prev.Target)
	rec := prev
	var (
		derr   error
		dead   bool
		ev     *event.Event
		mapped *mmapfile.Mapping // a large mail, mapped for the attempt (mapped.go)
		failed = func(msg string) { rec.State, rec.Finished, rec.LastError = StateDead, q.now(), msg; dead = true }
	)
	defer func() { q.unmapMail(ev, mapped) }()
	defer q.leaveSlot(t.slot) // an attempt that ends early is never taken along
	tg, ok := q.opt.Target(prev.Target)
	withMail := ok && !target.IgnoresMail(tg)
	if !ok {
		failed(fmt.Sprintf("target %s no longer exists", prev.Target))
		derr = target.Permanent(errors.New(rec.LastError))
	} else if ev, derr = q.cachedEvent(prev.EventID); derr != nil {
		failed("event unreadable: " + derr.Error())
		derr = target.Permanent(derr)
	}
	if dead {
		rec.addHistory(Attempt{Time: rec.Finished, Outcome: "dead", Error: rec.LastError})
		log.Error("delivery failed permanently", "err", rec.LastError)
		if ev == nil {
			ev = &event.Event{ID: prev.EventID}
		}
		q.finish(e, rec, ev, derr, log)
		return
	}

	// Record the attempt before making it.
	rec.State = StateInflight
	rec.Attempts++
	start := q.now()
	if err := q.writeRecord(&rec); err != nil {
		// Without the record the attempt must not happen. Try again later
		// without counting it.
		log.Error("cannot record delivery attempt; postponing it", "err", err)
		rec = prev
		rec.NextAttempt = start.Add(q.opt.Backoff.Delay(1, nil))
		q.settle(e, rec)
		return
	}

	q.slotReadyFor(t.slot, ev)

	batcher, batches := tg.(target.Batcher)
	var res batchResult
	switch q.waitTurn(t, batches) {
	case turnStopped:
		// Shut down before its turn came: the attempt never happened.
		// Its record goes back to what it was; if that write fails, the
		// record says in flight and the next start resolves it as after
		// a crash.
		rec = prev
		if err := q.writeRecord(&rec); err != nil {
			log.Warn("cannot take back an attempt that never started; the next start resolves it", "err", err)
		}
		q.settle(e, rec)
		return
	case turnClaimed:
		// An attempt ahead delivers this one with its own (batch.go); it
		// always answers, so this one waits even at shutdown.
		<-t.slot.done
		res = t.slot.res
	case turnMine:
		if batches {
			q.deliverBatch(ctx, batcher, withMail, t.members)
			res = t.slot.res
			break
		}
		if withMail {
			// The raw mail (up to max-message-size) is loaded in the
			// attempt's turn, so the attempts waiting in a pipeline do not
			// each hold one.
			full, m, err := q.readEventToDeliver(prev.EventID, true)
			if err != nil {
				res.unreadable = err
				break
			}
			ev, mapped = full, m
		}
		t0 := time.Now()
		res.err = q.deliver(ctx, tg, ev)
		q.unmapMail(ev, mapped) // the target is done with the mail
		mapped = nil
		res.took = time.Since(t0)
	}
	t.pass() // the target's next attempt may call it while this one records its outcome
	if res.ev != nil {
		ev = res.ev
	}
	if res.unreadable != nil {
		rec.State, rec.Finished, rec.LastError = StateDead, q.now(), "event unreadable: "+res.unreadable.Error()
		rec.addHistory(Attempt{Time: start, Outcome: "dead", Error: rec.LastError})
		log.Error("delivery failed permanently", "attempts", rec.Attempts, "err", rec.LastError)
		q.finish(e, rec, ev, target.Permanent(res.unreadable), log)
		return
	}
	derr, took := res.err, res.took
	now := q.now()

	switch {
	case derr == nil:
		rec.State, rec.Finished = StateDone, now
		rec.addHistory(Attempt{Time: start, Outcome: "delivered", Duration: took})
		if prev.Attempts == 0 {
			log.Info("delivered", "attempts", rec.Attempts, "duration", took)
		} else {
			log.Info("delivered after retries", "attempts", rec.Attempts, "duration", took, "previous_error", prev.LastError)
		}
		rec.LastError = ""
	case target.IsTemporary(derr):
		msg := derr.Error()
		deadline := rec.ageBase().Add(q.opt.MaxAge)
		if !now.Before(deadline) {
			rec.State, rec.Finished, rec.LastError = StateDead, now, msg
			dead = true
			rec.addHistory(Attempt{Time: start, Outcome: "dead", Error: msg, Duration: took})
			log.Error("giving up on delivery", "attempts", rec.Attempts, "max_age", q.opt.MaxAge, "err", msg)
			break
		}
		wait := max(q.opt.Backoff.Delay(rec.Attempts, nil), target.RetryAfter(derr))
		next := now.Add(wait)
		if next.After(deadline) {
			next = deadline // one last attempt when the maximum age is reached
		}
		rec.State, rec.NextAttempt = StatePending, next
		rec.addHistory(Attempt{Time: start, Outcome: "retry", Error: msg, Duration: took})
		if rec.Attempts == 1 || msg != prev.LastError {
			log.Warn("delivery failed, will retry", "attempts", rec.Attempts, "next_attempt", next, "err", msg)
		} else {
			log.Debug("delivery failed again, will retry", "attempts", rec.Attempts, "next_attempt", next, "err", msg)
		}
		rec.LastError = msg
	default:
		msg := derr.Error()
		rec.State, rec.Finished, rec.LastError = StateDead, now, msg
		dead = true
		rec.addHistory(Attempt{Time: start, Outcome: "dead", Error: msg, Duration: took})
		log.Error("delivery failed permanently", "attempts", rec.Attempts, "err", msg)
	}
	q.finish(e, rec, ev, derr, log)
}

// finish records an attempt's outcome on disk and in memory, then runs the
// hooks.
func (q *Queue) finish(e *entry, rec record, ev *event.Event, derr error, log *slog.Logger) {
	var d Delivery
	if rec.State == StateDone {
		// A success frees its target before the outcome is on disk, so the
		// target's next attempt overlaps this write instead of waiting for
		// it. A crash in between leaves this record in flight, exactly as a
		// crash between Deliver and the write always could: the attempt is
		// verified (local targets) or repeated at the next start.
		d = q.settle(e, rec)
		if err := q.writeRecord(&rec); err != nil {
			log.Error("cannot record delivery outcome", "state", rec.State, "err", err)
		} else {
			q.noteRecorded(e)
		}
	} else {
		if err := q.writeRecord(&rec); err != nil {
			// The file still says in flight: after a crash the attempt is
			// resolved again (verified or repeated). In memory the outcome holds.
			log.Error("cannot record delivery outcome", "state", rec.State, "err", err)
		}
		d = q.settle(e, rec)
	}
	if q.opt.OnOutcome != nil {
		q.opt.OnOutcome(d, derr)
	}
	if rec.State == StateDead {
		q.notifyDeadEvent(e, d, ev)
	}
}

// settle installs rec as e's state, frees its target and kicks the loop.
func (q *Queue) settle(e *entry, rec record) Delivery {
	q.mu.Lock()
	e.rec = rec
	if tq := q.targets[rec.Target]; tq != nil {
		tq.inflight--
		if tq.inflight == 0 {
			*q.busyCount(tq.local)--
		}
	}
	if rec.State == StatePending {
		q.push(e)
	}
	d := e.delivery()
	q.mu.Unlock()
	q.Kick()
	return d
}

// deliver calls the target with the attempt timeout; a panic becomes a
// temporary error instead of killing the loop.
func (q *Queue) deliver(ctx context.Context, tg target.Target, ev *event.Event) (err error) {
	ctx, cancel := context.WithTimeout(ctx, q.opt.AttemptTimeout)
	defer cancel()
	// A mapped mail whose file was truncated faults when read: a panic
	// here, like any other, rather than a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("target panicked", "event_id", ev.ID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = target.Temporary(fmt.Errorf("target panicked: %v", r), 0)
		}
	}()
	return tg.Deliver(ctx, ev)
}

// notifyDead runs OnDead for a dead delivery found at start-up.
func (q *Queue) notifyDead(e *entry, d Delivery) {
	ev, err := q.readEvent(d.EventID, true)
	if err != nil {
		q.log.Warn("dead delivery's event unreadable", "event_id", d.EventID, "delivery_id", d.ID, "err", err)
		ev = &event.Event{ID: d.EventID}
	}
	q.notifyDeadEvent(e, d, ev)
}

// notifyDeadEvent calls OnDead, then records that it did.
func (q *Queue) notifyDeadEvent(e *entry, d Delivery, ev *event.Event) {
	if q.opt.OnDead != nil {
		q.opt.OnDead(d, ev)
	}
	q.mu.Lock()
	if e.rec.State != StateDead || e.rec.DeadNotified {
		q.mu.Unlock() // retried or dropped meanwhile
		return
	}
	e.rec.DeadNotified = true
	rec := e.rec
	// Written under mu so that a concurrent Retry cannot be overwritten
	// by this older state.
	err := q.writeRecord(&rec)
	q.mu.Unlock()
	if err != nil {
		q.log.Warn("cannot record that the failure was reported; it may be reported again after a restart",
			"delivery_id", d.ID, "err", err)
	}
}
