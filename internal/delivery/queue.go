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
package delivery

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
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

// Stats are the queue's figures for metrics and health checks.
type Stats struct {
	Pending, Inflight, Dead, Done int
	// OldestPending is the age of the oldest delivery not yet done or dead.
	OldestPending time.Duration
}

// Errors of the admin operations.
var (
	ErrNotFound = errors.New("no such delivery")
	ErrInFlight = errors.New("delivery is in flight")
)

// gcInterval is how often Run removes expired done records.
const gcInterval = time.Minute

// Queue is the durable delivery queue. Its methods are safe for concurrent
// use; Run must be running for anything to be delivered.
type Queue struct {
	opt  Options
	dir  string
	log  *slog.Logger
	now  func() time.Time
	lock *os.File // flock on Dir/lock: one process owns the queue
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
	err := q.lock.Close()
	q.lock = nil
	return err
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

// load reads the queue directory into memory and recovers it.
func (q *Queue) load() error {
	evDir := filepath.Join(q.dir, eventsDir)
	recDir := filepath.Join(q.dir, recordsDir)

	// Events: committed ones are the .json files; a .eml alone is the
	// payload of a write that never committed.
	evNames, err := readDirNames(evDir)
	if err != nil {
		return err
	}
	// events maps each readable event to its target list (nil for files
	// written before the list existed).
	events := map[string][]listedTarget{}
	// broken are the events whose file is unreadable or missing while
	// deliveries name them: their deliveries become dead letters (corrupt.go).
	broken := map[string]*brokenEvent{}
	var stale, staleRecs []string
	for _, name := range evNames {
		p := filepath.Join(evDir, name)
		switch {
		case strings.HasPrefix(name, safeio.TempPrefix):
			stale = append(stale, p)
		case strings.HasSuffix(name, ".json"):
			id := strings.TrimSuffix(name, ".json")
			if err := validEventID(id); err != nil {
				q.quarantine(p, err)
				continue
			}
			_, listed, err := q.readEventAndTargets(id, false)
			if err != nil {
				raw, _ := os.ReadFile(p)
				dst := q.quarantine(p, err)
				if _, err := os.Stat(q.mailPath(id)); err == nil {
					q.quarantine(q.mailPath(id), errors.New("its event file is unreadable"))
				}
				if dst != "" {
					broken[id] = &brokenEvent{
						why:     fmt.Sprintf("its queued event file was unreadable (%v) and was moved to %s", err, dst),
						targets: salvageTargets(raw),
					}
				}
				continue
			}
			events[id] = listed
		case strings.HasSuffix(name, ".eml"):
			// Checked below, once every .json is known.
		default:
			q.quarantine(p, errors.New("unexpected file in the events directory"))
		}
	}
	for _, name := range evNames {
		id, ok := strings.CutSuffix(name, ".eml")
		if _, committed := events[id]; ok && !committed && !strings.HasPrefix(name, safeio.TempPrefix) {
			stale = append(stale, filepath.Join(evDir, name))
		}
	}

	// Records.
	recNames, err := readDirNames(recDir)
	if err != nil {
		return err
	}
	var inflight []*entry
	var collected []string
	unreadable := map[string][]string{} // event ID → targets whose record was quarantined
	// badRecords holds, per event and target, why a quarantined record's
	// delivery is now a dead letter.
	badRecords := map[string]map[string]string{}
	for _, name := range recNames {
		p := filepath.Join(recDir, name)
		if strings.HasPrefix(name, safeio.TempPrefix) {
			staleRecs = append(staleRecs, p)
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok {
			q.quarantine(p, errors.New("unexpected file in the deliveries directory"))
			continue
		}
		if _, _, ok := splitID(id); !ok {
			q.quarantine(p, fmt.Errorf("invalid delivery id %q", id))
			continue
		}
		r, err := readRecord(p, id)
		if err != nil {
			dst := q.quarantine(p, err)
			evID, tg, _ := splitID(id)
			if dst != "" {
				if badRecords[evID] == nil {
					badRecords[evID] = map[string]string{}
				}
				badRecords[evID][tg] = fmt.Sprintf("its delivery record was unreadable (%v) and was moved to %s", err, dst)
			}
			unreadable[evID] = append(unreadable[evID], tg)
			continue
		}
		if b := broken[r.EventID]; b != nil {
			b.records = append(b.records, r)
			continue
		}
		if _, ok := events[r.EventID]; !ok {
			if r.State == StateDone {
				// Collection removes an event file before the done records
				// it lists (so none of them is implied again): a crash in
				// between leaves these, and they have served their purpose.
				collected = append(collected, p)
				continue
			}
			// Not a collection's leftover: deliveries that were owed lost
			// their event. They become dead letters, not silence.
			broken[r.EventID] = &brokenEvent{why: "its queued event file is missing", records: []*record{r}}
			continue
		}
		e := &entry{id: id, rec: *r, idx: -1, onDisk: true}
		q.entries[id] = e
		q.byEvent[r.EventID]++
		if r.State == StateInflight {
			inflight = append(inflight, e)
		}
	}
	// A delivery whose record was quarantined, or whose event is unreadable
	// or missing, becomes a dead letter saying why (corrupt.go).
	q.deadLetterCorrupt(events, broken, badRecords, unreadable)
	// A listed target whose record was quarantined was attempted (perhaps
	// delivered): it must not pass for one never attempted, now or at the
	// next start, so it leaves the list, as the delivery left the queue
	// before lists existed.
	for evID, names := range unreadable {
		listed, ok := events[evID]
		if !ok || !slices.ContainsFunc(listed, func(t listedTarget) bool { return slices.Contains(names, t.Name) }) {
			continue
		}
		events[evID] = slices.DeleteFunc(listed, func(t listedTarget) bool { return slices.Contains(names, t.Name) })
		if err := q.rewriteTargets(evID, nil, names); err != nil {
			q.log.Error("cannot take deliveries with unreadable records off their event's list", "event_id", evID, "error", err)
		}
	}
	// Targets an event file lists without a record were never attempted:
	// pending since they were queued.
	for evID, listed := range events {
		for _, t := range listed {
			id := deliveryID(evID, t.Name)
			if e, ok := q.entries[id]; ok {
				e.listed = true
				continue
			}
			q.entries[id] = &entry{id: id, idx: -1, listed: true, rec: record{
				EventID: evID, Target: t.Name, State: StatePending, Created: t.Created, NextAttempt: t.Created,
			}}
			q.byEvent[evID]++
		}
	}
	// Temporary files of writes that never committed: their writer was this
	// queue's owner, and we hold the lock, so it is gone.
	if len(stale)+len(staleRecs) > 0 {
		q.log.Info("removing uncommitted queue files", "count", len(stale)+len(staleRecs))
		err := errors.Join(removeFiles(evDir, stale), removeFiles(recDir, staleRecs))
		if err != nil {
			q.log.Warn("cannot remove uncommitted queue files", "error", err)
		}
	}
	if len(collected) > 0 {
		q.log.Info("removing delivered records whose event was collected", "count", len(collected))
		if err := removeFiles(recDir, collected); err != nil {
			q.log.Warn("cannot remove delivered records whose event was collected", "error", err)
		}
	}
	// Events without deliveries: written by an Enqueue before any record in
	// files without a target list (never acknowledged), or left by a
	// collection or drop that a crash interrupted.
	var orphans []string
	for id := range events {
		if q.byEvent[id] == 0 {
			orphans = append(orphans, q.eventPath(id), q.mailPath(id))
		}
	}
	if len(orphans) > 0 {
		q.log.Info("removing events without deliveries", "count", len(orphans)/2)
		if err := removeFiles(evDir, orphans); err != nil {
			q.log.Warn("cannot remove events without deliveries", "error", err)
		}
	}
	for _, e := range inflight {
		q.recoverInflight(e)
	}
	for _, e := range q.entries {
		if e.rec.State == StatePending {
			q.push(e)
		}
	}
	return nil
}

// readDirNames lists the regular files of a directory.
func readDirNames(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(des))
	for _, de := range des {
		if de.Type().IsRegular() {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// recoverInflight resolves a delivery that a crash left in flight.
func (q *Queue) recoverInflight(e *entry) {
	r := &e.rec
	log := q.log.With("event_id", r.EventID, "delivery_id", e.id, "target", r.Target)
	now := q.now()
	decision := "target cannot confirm deliveries: delivering again (at least once)"
	delivered := false
	if tg, ok := q.opt.Target(r.Target); !ok {
		decision = "target no longer exists: the next attempt decides"
	} else if v, ok := tg.(target.Verifier); ok {
		ev, err := q.readEvent(r.EventID, true)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), q.opt.AttemptTimeout)
			delivered, err = v.Delivered(ctx, ev)
			cancel()
		}
		switch {
		case err != nil:
			decision = "target could not confirm the delivery (" + err.Error() + "): delivering again"
		case delivered:
			decision = "target confirms the delivery: done"
		default:
			decision = "target confirms it was not delivered: delivering again"
		}
	}
	r.addHistory(Attempt{Time: now, Outcome: "interrupted", Error: decision})
	if delivered {
		r.State, r.Finished, r.LastError = StateDone, now, ""
		log.Info("delivery interrupted by a crash was completed", "decision", decision)
	} else {
		r.State, r.NextAttempt = StatePending, now
		log.Warn("delivery interrupted by a crash", "decision", decision)
	}
	if err := q.writeRecord(r); err != nil {
		// The in-memory state is right; the file still says in flight, and
		// the next start decides again.
		log.Error("cannot record crash recovery", "error", err)
	}
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

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	gc := time.NewTicker(gcInterval)
	defer gc.Stop()
	for {
		wait := q.dispatch(attemptCtx, &wg)
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
func (q *Queue) dispatch(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	q.lastTurn = now
	// Targets with due work, most overdue first, so a busy queue stays fair
	// under the global bound.
	var due []*targetQ
	for _, tq := range q.targets {
		if !tq.busy && len(tq.pending) > 0 && !tq.pending[0].rec.NextAttempt.After(now) {
			due = append(due, tq)
		}
	}
	slices.SortFunc(due, func(a, b *targetQ) int {
		return cmp.Or(a.pending[0].rec.NextAttempt.Compare(b.pending[0].rec.NextAttempt), cmp.Compare(a.name, b.name))
	})
	for _, tq := range due {
		local := q.isLocal(tq.name)
		if q.classFull(local) {
			continue // the other class may still have a slot
		}
		e := heap.Pop(&tq.pending).(*entry)
		prev := e.rec
		e.rec.State = StateInflight
		e.onDisk = true // every attempt writes its record
		tq.busy = true
		tq.local = local
		q.inflight++
		if local {
			q.inflightLocal++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.attempt(ctx, e, prev)
		}()
	}
	wait := time.Duration(-1)
	for _, tq := range q.targets {
		if tq.busy || len(tq.pending) == 0 || q.classFull(q.isLocal(tq.name)) {
			continue // a finishing attempt kicks
		}
		d := max(tq.pending[0].rec.NextAttempt.Sub(now), 0)
		if wait < 0 || d < wait {
			wait = d
		}
	}
	return wait
}

// isLocal reports whether the named target delivers locally (target.Local)
// and so takes a local slot. Caller holds mu.
func (q *Queue) isLocal(name string) bool {
	tg, ok := q.opt.Target(name)
	return ok && target.IsLocal(tg)
}

// classFull reports whether every slot of the class is taken. Caller holds
// mu.
func (q *Queue) classFull(local bool) bool {
	if local {
		return q.inflightLocal >= q.opt.LocalConcurrency
	}
	return q.inflight-q.inflightLocal >= q.opt.Concurrency
}

// attempt runs one delivery attempt; prev is the record before dispatch.
func (q *Queue) attempt(ctx context.Context, e *entry, prev record) {
	log := q.log.With("event_id", prev.EventID, "delivery_id", e.id, "target", prev.Target)
	rec := prev
	var (
		derr   error
		dead   bool
		ev     *event.Event
		failed = func(msg string) { rec.State, rec.Finished, rec.LastError = StateDead, q.now(), msg; dead = true }
	)
	tg, ok := q.opt.Target(prev.Target)
	if !ok {
		failed(fmt.Sprintf("target %s no longer exists", prev.Target))
		derr = target.Permanent(errors.New(rec.LastError))
	} else if ev, derr = q.readEvent(prev.EventID, !target.IgnoresMail(tg)); derr != nil {
		failed("event unreadable: " + derr.Error())
		derr = target.Permanent(derr)
	}
	if dead {
		rec.addHistory(Attempt{Time: rec.Finished, Outcome: "dead", Error: rec.LastError})
		log.Error("delivery failed permanently", "error", rec.LastError)
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
		log.Error("cannot record delivery attempt; postponing it", "error", err)
		rec = prev
		rec.NextAttempt = start.Add(q.opt.Backoff.Delay(1, nil))
		q.settle(e, rec)
		return
	}

	t0 := time.Now()
	derr = q.deliver(ctx, tg, ev)
	took := time.Since(t0)
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
			log.Error("giving up on delivery", "attempts", rec.Attempts, "max_age", q.opt.MaxAge, "error", msg)
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
			log.Warn("delivery failed, will retry", "attempts", rec.Attempts, "next_attempt", next, "error", msg)
		} else {
			log.Debug("delivery failed again, will retry", "attempts", rec.Attempts, "next_attempt", next, "error", msg)
		}
		rec.LastError = msg
	default:
		msg := derr.Error()
		rec.State, rec.Finished, rec.LastError = StateDead, now, msg
		dead = true
		rec.addHistory(Attempt{Time: start, Outcome: "dead", Error: msg, Duration: took})
		log.Error("delivery failed permanently", "attempts", rec.Attempts, "error", msg)
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
			log.Error("cannot record delivery outcome", "state", rec.State, "error", err)
		}
	} else {
		if err := q.writeRecord(&rec); err != nil {
			// The file still says in flight: after a crash the attempt is
			// resolved again (verified or repeated). In memory the outcome holds.
			log.Error("cannot record delivery outcome", "state", rec.State, "error", err)
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
		tq.busy = false
		if tq.local {
			q.inflightLocal--
		}
	}
	q.inflight--
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
		q.log.Warn("dead delivery's event unreadable", "event_id", d.EventID, "delivery_id", d.ID, "error", err)
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
			"delivery_id", d.ID, "error", err)
	}
}

// List returns every delivery the queue holds (pending, in flight, dead,
// and recently done), oldest first.
func (q *Queue) List() ([]Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Delivery, 0, len(q.entries))
	for _, e := range q.entries {
		out = append(out, e.delivery())
	}
	slices.SortFunc(out, func(a, b Delivery) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Get returns one delivery and its event (with the raw mail, if any).
func (q *Queue) Get(id string) (Delivery, *event.Event, error) {
	q.mu.Lock()
	e, ok := q.entries[id]
	var d Delivery
	if ok {
		d = e.delivery()
	}
	q.mu.Unlock()
	if !ok {
		return Delivery{}, nil, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	ev, err := q.readEvent(d.EventID, true)
	if err != nil {
		return d, nil, fmt.Errorf("delivery %s: %w", id, err)
	}
	return d, ev, nil
}

// Retry makes a dead or pending delivery due now and kicks the scheduler.
// A dead delivery starts a new maximum age.
func (q *Queue) Retry(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.entries[id]
	if !ok {
		return fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	now := q.now()
	rec := e.rec
	switch rec.State {
	case StateInflight:
		return fmt.Errorf("delivery %s: %w", id, ErrInFlight)
	case StateDone:
		return fmt.Errorf("delivery %s: already delivered", id)
	case StateDead:
		rec.RetrySince = now
		rec.Finished = time.Time{}
		rec.DeadNotified = false
	}
	rec.State, rec.NextAttempt = StatePending, now
	// Written under mu: the loop cannot dispatch it meanwhile.
	e.onDisk = true
	if err := q.writeRecord(&rec); err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	q.remove(e)
	e.rec = rec
	q.push(e)
	q.log.Info("delivery retry requested", "event_id", rec.EventID, "delivery_id", id, "target", rec.Target)
	q.Kick()
	return nil
}

// Drop removes a pending or dead delivery (and its event, once no delivery
// names it).
func (q *Queue) Drop(id string) error {
	q.fileMu.Lock()
	defer q.fileMu.Unlock()
	q.mu.Lock()
	e, ok := q.entries[id]
	if !ok {
		q.mu.Unlock()
		return fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	switch e.rec.State {
	case StateInflight:
		q.mu.Unlock()
		return fmt.Errorf("delivery %s: %w", id, ErrInFlight)
	case StateDone:
		q.mu.Unlock()
		return fmt.Errorf("delivery %s: already delivered", id)
	}
	// Removed from memory first (under mu) so the loop cannot dispatch it.
	q.remove(e)
	delete(q.entries, id)
	q.byEvent[e.rec.EventID]--
	lastRef := q.byEvent[e.rec.EventID] == 0
	if lastRef {
		delete(q.byEvent, e.rec.EventID)
	}
	rec, listed, onDisk := e.rec, e.listed, e.onDisk
	q.mu.Unlock()
	evDir, recDir := filepath.Join(q.dir, eventsDir), filepath.Join(q.dir, recordsDir)
	if lastRef && !onDisk {
		// The event file is all there is: removing it drops the delivery.
		if err := removeFiles(evDir, []string{q.eventPath(rec.EventID), q.mailPath(rec.EventID)}); err != nil {
			return fmt.Errorf("delivery: drop %s: %w", id, err)
		}
	} else {
		// Off the list first, so that nothing implies the delivery once its
		// record is gone; a crash in between leaves the record, as if Drop
		// had not run.
		if listed {
			if err := q.rewriteTargets(rec.EventID, nil, []string{rec.Target}); err != nil {
				return fmt.Errorf("delivery: drop %s: %w", id, err)
			}
		}
		if err := removeFiles(recDir, []string{q.recordPath(id)}); err != nil {
			return fmt.Errorf("delivery: drop %s: %w", id, err)
		}
		if lastRef {
			if err := removeFiles(evDir, []string{q.eventPath(rec.EventID), q.mailPath(rec.EventID)}); err != nil {
				q.log.Warn("cannot remove dropped event's files", "event_id", rec.EventID, "error", err)
			}
		}
	}
	q.log.Info("delivery dropped", "event_id", rec.EventID, "delivery_id", id, "target", rec.Target, "state", rec.State)
	return nil
}

// gc removes done records past DoneRetention, and then the events no
// delivery names any more.
func (q *Queue) gc() {
	q.fileMu.Lock()
	defer q.fileMu.Unlock()
	q.mu.Lock()
	now := q.now()
	// Per event: the targets collected, and those of them its file lists.
	type collect struct {
		recs   []string
		listed []string
	}
	byEv := map[string]*collect{}
	for id, e := range q.entries {
		if e.rec.State != StateDone {
			continue
		}
		since := e.rec.Finished
		if since.Before(q.openedAt) {
			since = q.openedAt
		}
		if now.Sub(since) < q.opt.DoneRetention {
			continue
		}
		delete(q.entries, id)
		c := byEv[e.rec.EventID]
		if c == nil {
			c = &collect{}
			byEv[e.rec.EventID] = c
		}
		c.recs = append(c.recs, q.recordPath(id))
		if e.listed {
			c.listed = append(c.listed, e.rec.Target)
		}
		if q.byEvent[e.rec.EventID]--; q.byEvent[e.rec.EventID] == 0 {
			delete(q.byEvent, e.rec.EventID)
		}
	}
	var whole []string // events with nothing left
	for evID := range byEv {
		if q.byEvent[evID] == 0 {
			whole = append(whole, evID)
		}
	}
	q.mu.Unlock()
	if len(byEv) == 0 {
		return
	}
	// Nothing may imply a collected delivery once its record is gone (it
	// would be delivered again): an event that keeps other deliveries gets
	// the collected targets off its list first; an event with nothing left
	// loses its .json first. A crash in between leaves done records, which
	// Open keeps (list rewritten) or removes (event gone).
	evDir, recDir := filepath.Join(q.dir, eventsDir), filepath.Join(q.dir, recordsDir)
	var recs, emls []string
	var errs []error
	if len(whole) > 0 {
		var gone []string
		for _, evID := range whole {
			if err := os.Remove(q.eventPath(evID)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			gone = append(gone, evID)
		}
		if err := safeio.SyncDir(evDir); err != nil {
			errs = append(errs, err)
			gone = nil // not known durable: the records stay
		}
		for _, evID := range gone {
			recs = append(recs, byEv[evID].recs...)
			emls = append(emls, q.mailPath(evID))
			delete(byEv, evID)
		}
		for _, evID := range whole {
			delete(byEv, evID) // those whose .json could not go keep their records
		}
	}
	for evID, c := range byEv {
		if len(c.listed) > 0 {
			if err := q.rewriteTargets(evID, nil, c.listed); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		recs = append(recs, c.recs...)
	}
	if err := removeFiles(recDir, recs); err != nil {
		errs = append(errs, err)
	}
	if len(emls) > 0 {
		if err := removeFiles(evDir, emls); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// In memory they are collected; on disk what is left is loaded as
		// done at the next start, and collected again.
		q.log.Warn("cannot remove all delivered records", "error", err)
	}
	q.log.Debug("collected delivered records", "records", len(recs), "events", len(emls))
}

// Stats returns the queue's counts.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	var s Stats
	var oldest time.Time
	for _, e := range q.entries {
		switch e.rec.State {
		case StatePending:
			s.Pending++
		case StateInflight:
			s.Inflight++
		case StateDead:
			s.Dead++
			continue
		case StateDone:
			s.Done++
			continue
		}
		if oldest.IsZero() || e.rec.Created.Before(oldest) {
			oldest = e.rec.Created
		}
	}
	if !oldest.IsZero() {
		s.OldestPending = max(q.now().Sub(oldest), 0)
	}
	return s
}

// Healthy reports false when the scheduler has not turned for maxStall
// although work was due for at least that long and could have been started
// (its target idle, a slot free). The systemd watchdog uses it.
func (q *Queue) Healthy(maxStall time.Duration) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	if now.Sub(q.lastTurn) <= maxStall {
		return true
	}
	for _, tq := range q.targets {
		if !tq.busy && len(tq.pending) > 0 && now.Sub(tq.pending[0].rec.NextAttempt) > maxStall &&
			!q.classFull(q.isLocal(tq.name)) {
			return false
		}
	}
	return true
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

// delivery returns the public view of e. Caller holds mu.
func (e *entry) delivery() Delivery {
	return Delivery{
		ID: e.id, EventID: e.rec.EventID, Target: e.rec.Target, State: e.rec.State,
		Attempts: e.rec.Attempts, Created: e.rec.Created, NextAttempt: e.rec.NextAttempt,
		Finished: e.rec.Finished, LastError: e.rec.LastError, History: slices.Clone(e.rec.History),
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
