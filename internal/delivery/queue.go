// Package delivery holds herald's durable delivery queue: one delivery per
// (event, target), retried with backoff until it is delivered, given up on
// (a dead letter), or dropped by the admin. It is what makes docs/interfaces.md §1's "at
// most once per target per event" true across crashes:
//
//   - Enqueue commits every delivery of an event with one durable write, the
//     event file listing its targets; a delivery gets a record file of its
//     own from its first attempt on (store.go describes the layout);
//   - an attempt is recorded as in flight (durably) before the target is
//     called, and its outcome is recorded after;
//   - at start-up, a delivery still marked in flight was interrupted by a
//     crash: a target that can check (Verifier: file, mbox) says whether it
//     happened, so local targets get exactly one copy; a remote target gets
//     the attempt again (at least once — it cannot be asked);
//   - Enqueue is idempotent, so a spool entry routed again after a crash
//     does not duplicate deliveries.
//
// One scheduler loop (Run) owns dispatching: a timer to the earliest next
// attempt, a kick channel, a concurrency bound per class (local targets —
// target.Local — have slots of their own, so hanging remote targets never
// delay a file or mbox delivery) and a pipeline per target: up to
// TargetDepth (LocalDepth for local ones) attempts of one target are in
// flight at once, each recording itself durably while the one before it
// calls the target, but the target is called by one attempt at a time, in
// the order they were dispatched. A target.Batcher is called once for a run
// of attempts recorded ahead (batch.go), each recording its own outcome.
// So a slow target never runs in parallel with itself, deliveries to one
// target keep their order, and the fsync of each in-flight record overlaps
// the call before it instead of adding to it (docs/flow.md).
//
// The files, by concern: queue.go (the Queue, Open, Enqueue), recovery.go
// (reading the queue back and settling interrupted attempts), scheduler.go
// (Run, dispatch and the attempt), batch.go (attempts delivered together),
// admin.go (list, show, retry, drop,
// flush, mailq's view), gc.go (removing what is done), corrupt.go (damaged
// files become dead letters), store.go (the on-disk layout). The lock
// story: fileMu (Enqueue shared; Drop and gc exclusive) is taken before
// mu, which guards the in-memory state and is never held while a target
// is called or a file is written.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/safeio"
	"herald/internal/target"
)

// Options configure a Queue. Dir and Target are required.
type Options struct {
	// Dir holds the queue (e.g. STATE/queue); created when missing.
	Dir string
	// Target resolves a target name at attempt time, so a config reload
	// takes effect for deliveries already queued.
	Target func(name string) (target.Target, bool)
	Logger *slog.Logger
	// Concurrency bounds the targets that are not local with attempts in
	// flight at once (default 16): a target that hangs takes one slot.
	Concurrency int
	// LocalConcurrency bounds the local targets (target.Local: file, mbox,
	// journal, local mailboxes) with attempts in flight at once; they have
	// slots of their own so that they never wait behind remote targets
	// that hang (default 8).
	LocalConcurrency int
	// TargetDepth bounds the attempts of one remote target in flight at
	// once (default 16): they record themselves in flight side by side,
	// and call the target one after the other, in order. 1 makes each
	// attempt wait for the one before it to finish entirely. Deep enough
	// that a target keeps up with a steady stream while the disk is slow:
	// at 100 ms a record fsync (a disk shared with busy neighbours), 16 in
	// flight still carry 160 deliveries/s to one target.
	TargetDepth int
	// LocalDepth is TargetDepth for local targets (default 16). Their
	// calls write and fsync themselves; a target that delivers batches
	// (target.Batcher: file, mbox) takes along, in one call and one fsync,
	// the attempts recorded in flight behind the one whose turn it is, so
	// the deeper the pipeline the more a backlog shares each fsync. 16
	// makes a batch of up to 16 events per fsync, while the records of the
	// next batch, written through the queue's journal, share its commits
	// with the outcomes of the last one; deeper would add little per fsync
	// and hold more of the disk from the spool, whose fsyncs the
	// submitters wait for.
	LocalDepth int
	// MaxAge is how long temporary failures are retried before the delivery
	// is given up (default 120 h).
	MaxAge time.Duration
	// Backoff is the retry schedule (zero: DefaultBackoff()).
	Backoff Backoff
	// AttemptTimeout bounds one Deliver call (default 60 s).
	AttemptTimeout time.Duration
	// ShutdownGrace is how long Run lets attempts in flight finish after its
	// context ends before cancelling them (default 10 s).
	ShutdownGrace time.Duration
	// DoneRetention is how long delivered records (and their event) are kept
	// for `herald queue` to show, counted from delivery or from Open,
	// whichever is later (default 1 h). Counting from Open matters: a spool
	// entry routed again right after a restart finds its done records and
	// is not delivered twice, however long the machine was down.
	DoneRetention time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// OnDead is called once a delivery is dead (durably), outside any lock:
	// the daemon emits its delivery-failed event from it. If the process
	// dies before OnDead returns, it is called again after the next start.
	OnDead func(d Delivery, ev *event.Event)
	// OnOutcome is called after every attempt (metrics); may be nil.
	OnOutcome func(d Delivery, err error)
	// Fail injects failures into the queue's journal (safeio.JournalOptions.Fail).
	// Tests only.
	Fail func(step safeio.Step, path string) error
	// journalSync replaces the journal's flush (tests: a slow disk).
	journalSync func(*os.File) error
}

// Delivery is the state of one (event, target) delivery.
// Its JSON keys are snake_case, like those of the records and attempts.
type Delivery struct {
	ID          string    `json:"id"` // "EVENTID.TARGET"
	EventID     string    `json:"event_id"`
	Target      string    `json:"target"`
	State       string    `json:"state"` // StatePending, StateInflight, StateDone or StateDead
	Attempts    int       `json:"attempts"`
	Created     time.Time `json:"created"`
	NextAttempt time.Time `json:"next_attempt,omitzero"` // meaningful when pending
	Finished    time.Time `json:"finished,omitzero"`     // when it became done or dead
	LastError   string    `json:"last_error,omitempty"`
	History     []Attempt `json:"history,omitempty"` // the last 20 attempts, oldest first
}

// Errors of the admin operations.
var (
	ErrNotFound = errors.New("no such delivery")
	ErrInFlight = errors.New("delivery is in flight")
	// ErrDelivered: the delivery is done, there is nothing to retry or drop.
	ErrDelivered = errors.New("already delivered")
)

// Queue is the durable delivery queue. Its methods are safe for concurrent
// use; Run must be running for anything to be delivered.
type Queue struct {
	opt  Options
	dir  string
	log  *slog.Logger
	now  func() time.Time
	lock *os.File // flock on Dir/lock: one process owns the queue
	// j writes every queue file (store.go): concurrent attempts' records
	// share its commits.
	j    *safeio.Journal
	kick chan struct{}
	// cache spares the attempts of one event reading its file each
	// (evcache.go).
	cache eventCache

	// fileMu keeps the operations that remove event files (Drop, garbage
	// collection: write lock) apart from those that create them (Enqueue:
	// read lock), so that an event file is never removed while a record
	// naming it is being added. Enqueues of different events run in
	// parallel (their fsyncs share journal commits); enqueues of one event
	// are serialised by eventMu. Taken before mu.
	fileMu  sync.RWMutex
	eventMu eventLocks

	mu      sync.Mutex
	entries map[string]*entry // by delivery ID
	// byEvent holds each event's deliveries (recorded, listed or folded).
	byEvent map[string][]*entry
	targets map[string]*targetQ // pending deliveries per target
	// busy and busyLocal count the targets with attempts in flight, remote
	// and local ones: the class bounds (Options.Concurrency and
	// LocalConcurrency) are on targets being delivered to, so a target
	// that hangs holds one slot, however deep its pipeline.
	busy, busyLocal int
	running         bool
	lastTurn        time.Time
	openedAt        time.Time
	// damaged are the dead letters Open made of damaged files (corrupt.go),
	// reported through OnOutcome once Open is done.
	damaged []*entry
	// foldWant are the events whose deliveries are all done, durably, to
	// be folded into the done log by Run's folder (donelog.go); foldKick
	// wakes it.
	foldWant map[string]struct{}
	foldKick chan struct{}

	// done is the done log (donelog.go). Appends (the folder, under
	// fileMu's read lock) and its compaction (gc, under its write lock)
	// are serialised by doneMu.
	doneMu sync.Mutex
	done   doneLog
}

// entry is one delivery in memory; rec mirrors its record file, or, before
// the first attempt, what its event file's target list implies.
type entry struct {
	id  string
	rec record
	idx int // position in its target's heap; -1 when not pending there
	// listed: the event file's target list names it, so removing the
	// delivery must take it off the list.
	listed bool
	// onDisk: a record file may exist (one was written or is being
	// written). False means there is certainly none.
	onDisk bool
	// recorded: its record says done, durably (done deliveries only).
	recorded bool
	// folded: the delivery is done and lives in the done log alone, its
	// event file and record gone (donelog.go).
	folded bool
}

// ref adds e to its event's deliveries. Caller holds mu (or owns q, in
// Open).
func (q *Queue) ref(e *entry) {
	q.byEvent[e.rec.EventID] = append(q.byEvent[e.rec.EventID], e)
}

// unref takes e off its event's deliveries. Caller holds mu.
func (q *Queue) unref(e *entry) {
	id := e.rec.EventID
	es := slices.DeleteFunc(q.byEvent[id], func(x *entry) bool { return x == e })
	if len(es) == 0 {
		delete(q.byEvent, id)
		return
	}
	q.byEvent[id] = es
}

// filed counts the deliveries of event id that its files hold (those not
// folded into the done log): while there are any, its event file exists.
// Caller holds mu.
func (q *Queue) filed(id string) int {
	n := 0
	for _, e := range q.byEvent[id] {
		if !e.folded {
			n++
		}
	}
	return n
}

// targetQ holds one target's pending deliveries, earliest first, and its
// pipeline of attempts in flight.
type targetQ struct {
	name    string
	pending entryHeap
	// inflight counts the target's attempts in flight (at most
	// Options.TargetDepth).
	inflight int
	// local is the class whose slot the target holds while inflight > 0
	// (a reload may change the target's class meanwhile): the slot goes
	// back to that class.
	local bool
	// turn is closed once the attempt dispatched last is done with the
	// target (or will never call it): the next attempt calls the target
	// only then. nil: no attempt was dispatched yet.
	turn <-chan struct{}
	// waiting are the places, in dispatch order, of the attempts of a
	// Batcher target that are recording themselves or waiting for their
	// turn: the ones a batch may take along (batch.go).
	waiting []*batchSlot
}

// Open opens (creating it when missing) the queue in opt.Dir and recovers
// it: temporary files of interrupted writes are removed, unreadable files
// quarantined, events without deliveries (never acknowledged, or collected)
// removed, and deliveries left in flight by a crash are resolved, each
// decision logged.
func Open(opt Options) (*Queue, error) {
	if opt.Dir == "" {
		return nil, errors.New("delivery: no queue directory")
	}
	if opt.Target == nil {
		return nil, errors.New("delivery: no target resolver")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Concurrency < 1 {
		opt.Concurrency = 16
	}
	if opt.LocalConcurrency < 1 {
		opt.LocalConcurrency = 8
	}
	if opt.TargetDepth < 1 {
		opt.TargetDepth = 16
	}
	if opt.LocalDepth < 1 {
		opt.LocalDepth = 16
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 120 * time.Hour
	}
	if opt.Backoff == (Backoff{}) {
		opt.Backoff = DefaultBackoff()
	}
	opt.Backoff = opt.Backoff.withDefaults()
	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = 60 * time.Second
	}
	if opt.ShutdownGrace <= 0 {
		opt.ShutdownGrace = 10 * time.Second
	}
	if opt.DoneRetention <= 0 {
		opt.DoneRetention = time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	q := &Queue{
		opt:      opt,
		dir:      opt.Dir,
		log:      opt.Logger,
		now:      opt.Now,
		kick:     make(chan struct{}, 1),
		entries:  map[string]*entry{},
		byEvent:  map[string][]*entry{},
		foldWant: map[string]struct{}{},
		foldKick: make(chan struct{}, 1),
		targets:  map[string]*targetQ{},
	}
	for _, d := range []string{q.dir, filepath.Join(q.dir, eventsDir), filepath.Join(q.dir, recordsDir)} {
		if err := mkdirDurable(d); err != nil {
			return nil, fmt.Errorf("delivery: %w", err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(q.dir, lockName), os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("delivery: queue %s is in use by another process", q.dir)
		}
		return nil, fmt.Errorf("delivery: lock %s: %w", q.dir, err)
	}
	q.lock = lf
	// The journal replays what a crash left before load reads the files;
	// the lock makes this process its only writer.
	j, err := safeio.OpenJournal(q.dir, safeio.JournalOptions{
		Logger: q.log, Fail: opt.Fail, Sync: opt.journalSync,
		SegmentSize: journalSegmentSize, SegmentAge: journalSegmentAge,
	})
	if err != nil {
		_ = q.Close()
		return nil, fmt.Errorf("delivery: %w", err)
	}
	q.j = j
	if err := q.load(); err != nil {
		_ = q.Close()
		return nil, fmt.Errorf("delivery: %w", err)
	}
	q.openedAt = q.now()
	q.lastTurn = q.openedAt
	if q.opt.OnOutcome != nil {
		// Counted like any dead letter (metrics); OnDead follows in Run.
		for _, e := range q.damaged {
			q.opt.OnOutcome(e.delivery(), target.Permanent(errors.New(e.rec.LastError)))
		}
	}
	q.damaged = nil
	return q, nil
}

// Close releases the queue directory. Call it after Run has returned.
func (q *Queue) Close() error {
	if q.lock == nil {
		return nil
	}
	var jerr error
	if q.j != nil {
		// q.j stays: a late write (an admin request racing the shutdown)
		// gets the journal's "closed" error, not a nil pointer.
		jerr = q.j.Close()
	}
	q.doneMu.Lock()
	if q.done.f != nil {
		jerr = errors.Join(jerr, q.done.f.Close())
		q.done = doneLog{}
	}
	q.doneMu.Unlock()
	err := q.lock.Close()
	q.lock = nil
	return errors.Join(jerr, err)
}

// The queue's journal closes a segment at journalSegmentSize bytes or
// journalSegmentAge, later than safeio's defaults: a checkpoint writes out
// every file still held (safeio.Op.Held), and the longer a segment lives,
// the more events of a backlog are delivered and folded into the done log
// (donelog.go) before that, so that their files are never created. Replay
// after a crash reads at most one such segment (and the one being
// checkpointed); memory stays bounded by MaxHeld. docs/durability.md, "The
// done log".
const (
	journalSegmentSize = 64 << 20
	journalSegmentAge  = 30 * time.Second
)

// mkdirDurable creates dir (0700) when missing and makes its entry durable.
func mkdirDurable(dir string) error {
	return safeio.MkdirAll(dir, dirMode)
}

// Enqueue queues ev for each named target, durably before it returns. It is
// idempotent: a delivery that already exists for (ev.ID, target), in any
// state, is left as it is. No targets means nothing to write.
//
// The deliveries are committed by one durable write, the event file that
// lists them (see store.go): no record is written before the first attempt.
// Targets added to an event already queued are committed by rewriting its
// event file with the union of both lists (an atomic rename; the mail is
// not rewritten). If the write fails nothing was queued by this call, and
// calling Enqueue again queues it.
func (q *Queue) Enqueue(ev *event.Event, targets []string) error {
	if ev == nil {
		return errors.New("delivery: nil event")
	}
	if len(targets) == 0 {
		return nil
	}
	if err := validEventID(ev.ID); err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	names := slices.Clone(targets)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if err := validTarget(n); err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
	}

	q.fileMu.RLock()
	defer q.fileMu.RUnlock()
	defer q.eventMu.lock(ev.ID)()
	q.mu.Lock()
	// Folded deliveries (donelog.go) have no event file left: a target
	// added then gets a fresh one.
	haveEvent := q.filed(ev.ID) > 0
	var missing []listedTarget
	now := q.now()
	for _, n := range names {
		if _, ok := q.entries[deliveryID(ev.ID, n)]; !ok {
			missing = append(missing, listedTarget{Name: n, Created: now})
		}
	}
	q.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	var err error
	if haveEvent {
		err = q.rewriteTargets(ev.ID, missing, nil)
	} else {
		err = q.writeEvent(ev, missing)
	}
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	q.mu.Lock()
	for _, t := range missing {
		e := &entry{id: deliveryID(ev.ID, t.Name), idx: -1, listed: true, rec: record{
			EventID: ev.ID, Target: t.Name, State: StatePending, Created: t.Created, NextAttempt: t.Created,
		}}
		q.entries[e.id] = e
		q.ref(e)
		q.push(e)
	}
	q.mu.Unlock()
	q.Kick()
	if q.log.Enabled(context.Background(), slog.LevelDebug) {
		added := make([]string, len(missing))
		for i, t := range missing {
			added[i] = t.Name
		}
		q.log.Debug("queued", "event_id", ev.ID, "targets", strings.Join(added, ","))
	}
	return nil
}

// eventLocks serialises the Enqueue calls of one event, and only of it:
// a lock per event ID while it is wanted. (Striped locks made unrelated
// events wait for each other's fsyncs: with 32 enqueues at once, two of
// them nearly always share one of 64 stripes.)
type eventLocks struct {
	mu sync.Mutex
	m  map[string]*eventLock
}

type eventLock struct {
	sync.Mutex
	refs int // callers holding or waiting for it
}

// lock locks id and returns the unlock.
func (l *eventLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*eventLock{}
	}
	el := l.m[id]
	if el == nil {
		el = &eventLock{}
		l.m[id] = el
	}
	el.refs++
	l.mu.Unlock()
	el.Lock()
	return func() {
		el.Unlock()
		l.mu.Lock()
		if el.refs--; el.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// delivery returns the public view of e. Caller holds mu.
func (e *entry) delivery() Delivery {
	return Delivery{
		ID: e.id, EventID: e.rec.EventID, Target: e.rec.Target, State: e.rec.State,
		Attempts: e.rec.Attempts, Created: e.rec.Created, NextAttempt: e.rec.NextAttempt,
		Finished: e.rec.Finished, LastError: e.rec.LastError, History: slices.Clone(e.rec.History),
	}
}
