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
// target.Local — have slots of their own, so four hanging remote targets
// never delay a file or mbox delivery) and at most one attempt in flight
// per target, so a slow target never runs in parallel with itself and
// deliveries to one target keep their order.
//
// The files, by concern: queue.go (the Queue, Open, Enqueue), recovery.go
// (reading the queue back and settling interrupted attempts), scheduler.go
// (Run, dispatch and the attempt), admin.go (list, show, retry, drop,
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
	"hash/fnv"
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
	// Concurrency bounds the attempts in flight over all targets that are
	// not local (default 4); one target never has more than one.
	Concurrency int
	// LocalConcurrency bounds the attempts in flight to local targets
	// (target.Local: file, mbox, journal, local mailboxes), which have
	// slots of their own so that they never wait behind remote targets
	// that hang (default 2).
	LocalConcurrency int
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

	// fileMu keeps the operations that remove event files (Drop, garbage
	// collection: write lock) apart from those that create them (Enqueue:
	// read lock), so that an event file is never removed while a record
	// naming it is being added. Enqueues of different events run in
	// parallel (their fsyncs share journal commits); enqueues of one event
	// are serialised by eventMu. Taken before mu.
	fileMu  sync.RWMutex
	eventMu [64]sync.Mutex

	mu       sync.Mutex
	entries  map[string]*entry   // by delivery ID
	byEvent  map[string]int      // deliveries (recorded or listed) per event ID
	targets  map[string]*targetQ // pending deliveries per target
	inflight int                 // attempts in flight, local ones included
	// inflightLocal counts the attempts in flight to local targets, which
	// have their own bound (Options.LocalConcurrency).
	inflightLocal int
	running       bool
	lastTurn      time.Time
	openedAt      time.Time
	// damaged are the dead letters Open made of damaged files (corrupt.go),
	// reported through OnOutcome once Open is done.
	damaged []*entry
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
}

// targetQ holds one target's pending deliveries, earliest first.
type targetQ struct {
	name    string
	pending entryHeap
	busy    bool // an attempt is in flight
	// local is the class of the attempt in flight (or the last one): its
	// slot is given back to that class.
	local bool
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
		opt.Concurrency = 4
	}
	if opt.LocalConcurrency < 1 {
		opt.LocalConcurrency = 2
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
		opt:     opt,
		dir:     opt.Dir,
		log:     opt.Logger,
		now:     opt.Now,
		kick:    make(chan struct{}, 1),
		entries: map[string]*entry{},
		byEvent: map[string]int{},
		targets: map[string]*targetQ{},
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
	j, err := safeio.OpenJournal(q.dir, safeio.JournalOptions{Logger: q.log, Fail: opt.Fail, Sync: opt.journalSync})
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
	err := q.lock.Close()
	q.lock = nil
	return errors.Join(jerr, err)
}

// mkdirDurable creates dir (0700) when missing and makes its entry durable.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	return safeio.SyncDir(filepath.Dir(dir))
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
	em := q.eventLock(ev.ID)
	em.Lock()
	defer em.Unlock()
	q.mu.Lock()
	haveEvent := q.byEvent[ev.ID] > 0
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
		q.byEvent[ev.ID]++
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

// eventLock returns the mutex that serialises Enqueue calls for one event.
func (q *Queue) eventLock(id string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &q.eventMu[h.Sum32()%uint32(len(q.eventMu))]
}

// delivery returns the public view of e. Caller holds mu.
func (e *entry) delivery() Delivery {
	return Delivery{
		ID: e.id, EventID: e.rec.EventID, Target: e.rec.Target, State: e.rec.State,
		Attempts: e.rec.Attempts, Created: e.rec.Created, NextAttempt: e.rec.NextAttempt,
		Finished: e.rec.Finished, LastError: e.rec.LastError, History: slices.Clone(e.rec.History),
	}
}
