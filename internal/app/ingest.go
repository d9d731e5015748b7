package app

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/mailconv"
	"herald/internal/spool"
	"herald/internal/target/relay"
)

// ingestLoop turns committed spool entries into queued deliveries, at
// start-up, whenever the spool signals new work, and on a timer: soon
// (backing off) after entries failed, slowly otherwise (rescan.go).
func (a *App) ingestLoop(ctx context.Context, wake <-chan struct{}) {
	var retry time.Duration
	first := true
	for {
		a.ingestBusy.Store(time.Now().UnixNano())
		failed, again := a.ingestPending(ctx, wake)
		a.ingestBusy.Store(0)
		// Heartbeat deadlines are judged only once what waited in the
		// spool (successes included) has been fed.
		a.monitors.Begin()
		if first {
			close(a.firstPass)
			first = false
		}
		a.noteFailures(failed, a.now())
		a.careForSpool(time.Now())
		retry = a.heal.policy.next(retry, len(failed) > 0)
		if again && ctx.Err() == nil {
			continue // new entries were signalled as the pass ended
		}
		delay := retry
		if delay == 0 {
			delay = a.heal.policy.idle
		} else {
			a.log.Info("spool entries failed; rescanning soon", "entries", len(failed), "in", delay.String())
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// ingestWorkers is how many spool entries are converted and queued at
// once. Each costs a few fsyncs; run side by side they share the file
// system's journal commits, which is what lets ingest keep up with SMTP
// when fsyncs are slow (a disk shared with busy neighbours: at 50 ms an
// fsync, eight workers carried fewer than 100 mails a second). What they
// hold in memory is bounded by ingestBytes of raw mail, however many
// there are; one entry is always taken, whatever its size.
const ingestWorkers = 32

// ingestBytes is a variable so that tests can lower it.
var ingestBytes int64 = 64 << 20

// ingestPassSpan is how long one pass keeps taking in entries that arrive
// while it runs. Entries signalled later wait for the next pass, which
// starts at once: the bookkeeping between passes (failure ages, spool
// upkeep) must run now and then however steady the stream of mail.
const ingestPassSpan = time.Second

// ingestPending processes every committed entry, oldest first, several at a
// time. An entry that fails for a temporary reason (queue disk full) stays
// in the spool and is tried again on the next pass; a corrupt one is
// quarantined. It returns the entries that failed, by spool ID.
//
// The pass does not wait for its slowest entry before it looks at new
// ones: when the spool signals (wake) while entries are still being
// processed, it lists the spool again and hands what is new to the next
// free worker, so a mail that arrives during a pass is picked up in
// microseconds rather than after it (docs/flow.md). An entry is taken at
// most once per pass. again reports that a signal came after the pass
// stopped taking entries in, so the caller starts the next pass at once.
func (a *App) ingestPending(ctx context.Context, wake <-chan struct{}) (failed map[string]error, again bool) {
	if a.spool.Kicked() {
		// sendmail -q: everything pending is due now (postqueue -f).
		a.queue.Flush()
	}
	a.spool.TakeFresh(nil) // the listing sees them
	entries, err := a.spool.Pending()
	if err != nil {
		a.log.Error("listing the spool", "err", err)
		return map[string]error{"": err}, false
	}
	var size int64
	for _, e := range entries {
		size += e.Size
	}
	a.spool.NoteUsage(entries) // for the shim's per-uid limit
	a.spoolEntries.Store(int64(len(entries)))
	a.spoolBytes.Store(size)
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		seen[e.ID] = true
	}
	// relist adds the entries committed since the last listing: those the
	// daemon committed itself, from memory, unless something else may have
	// come (spool.TakeFresh).
	relist := func() {
		skip := func(id string) bool { return seen[id] }
		more, complete := a.spool.TakeFresh(skip)
		if !complete {
			var err error
			if more, err = a.spool.PendingExcept(skip); err != nil {
				a.log.Error("listing the spool", "err", err)
				return
			}
		}
		for _, e := range more {
			seen[e.ID] = true
			a.spoolEntries.Add(1)
			a.spoolBytes.Add(e.Size)
		}
		entries = append(entries, more...)
	}

	work := make(chan spool.Entry)
	var (
		wg    sync.WaitGroup
		fmu   sync.Mutex
		busy  atomic.Int32
		held  atomic.Int64             // bytes of the entries being processed
		freed = make(chan struct{}, 1) // a worker finished an entry
	)
	failed = map[string]error{}
	for range ingestWorkers {
		wg.Go(func() {
			for e := range work {
				a.ingestBusy.Store(time.Now().UnixNano()) // progress, for Healthy
				if err := a.ingestGuarded(e); err != nil {
					a.log.Error("spool entry not processed; it stays in the spool", "spool_id", e.ID, "err", err)
					fmu.Lock()
					failed[e.ID] = err
					fmu.Unlock()
				} else {
					// The gauge follows the spool as it empties, not only at
					// the start of the next pass.
					a.spoolEntries.Add(-1)
					a.spoolBytes.Add(-e.Size)
				}
				held.Add(-e.Size)
				busy.Add(-1)
				select {
				case freed <- struct{}{}:
				default:
				}
			}
		})
	}
	open := time.Now().Add(ingestPassSpan) // entries signalled before this join the pass
feed:
	for ctx.Err() == nil {
		var send chan<- spool.Entry
		var next spool.Entry
		if len(entries) > 0 {
			if busy.Load() == 0 || held.Load()+entries[0].Size <= ingestBytes {
				send, next = work, entries[0]
			}
		} else if busy.Load() == 0 {
			select {
			case <-wake:
				if time.Now().Before(open) {
					relist()
					continue
				}
				again = true
			default:
			}
			break feed
		}
		select {
		case send <- next:
			held.Add(next.Size)
			busy.Add(1)
			entries = entries[1:]
		case <-freed:
		case <-wake:
			if time.Now().Before(open) {
				relist()
			} else {
				again = true
			}
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return failed, again
}

// maxConvertAttempts is how often the conversion of one spool entry may
// begin without finishing before the entry is set aside: an entry whose
// conversion kills the daemon (out of memory on a hostile mail, a crash in
// a parser) must not do so at every start.
//
// Only the conversion (parsing and classifying: the work that depends on
// what the submitter sent) is counted, not the whole pick-up: a daemon
// killed from outside while it queues (a SIGKILL, a reboot) interrupts the
// fsyncs of the oldest entries again and again, and that says nothing about
// them.
const maxConvertAttempts = 3

// ingestGuarded is ingest behind a panic guard: a panic while processing
// one entry is logged, and the entry stays for a later try.
func (a *App) ingestGuarded(e spool.Entry) (err error) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("panic while processing a spool entry", "spool_id", e.ID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return a.ingest(e)
}

// convert is toEvent behind the attempt count (maxConvertAttempts). set
// reports that the entry was set aside instead.
func (a *App) convert(e spool.Entry, raw []byte) (ev *event.Event, classifier string, set bool, err error) {
	n, cerr := a.spool.BeginAttempt(e)
	if cerr != nil {
		a.log.Warn("spool: cannot record the conversion attempt; converting anyway", "spool_id", e.ID, "err", cerr)
	}
	if n > maxConvertAttempts {
		return nil, "", true, a.setAside(e, fmt.Errorf("its conversion began %d times without finishing (the daemon died or panicked converting it)", n-1))
	}
	// A panic leaves the attempt counted, as a crash does.
	ev, classifier, err = a.toEvent(e, raw)
	a.spool.EndAttempts(e)
	return ev, classifier, false, err
}

// setAside quarantines an entry that cannot be processed and tells the
// admin through the normal routing, with an error event of its own: a mail
// that crashes conversion must neither loop nor vanish.
func (a *App) setAside(e spool.Entry, reason error) error {
	host := a.Settings().Daemon.Hostname
	ev := &event.Event{
		ID:        e.ID, // entering twice (a crash below) queues nothing twice
		Timestamp: e.Env.Received,
		Severity:  event.Error,
		Title:     fmt.Sprintf("herald on %s: a %s submission was set aside", host, e.Env.Source),
		Body: fmt.Sprintf("Spool entry %s (%d bytes, from %q, %d recipients, submitted by uid %d through %s) could not be processed and was moved to the spool's quarantine directory.\nReason: %v\n",
			e.ID, e.Size, e.Env.From, len(e.Env.Recipients), e.Env.UID, e.Env.Source, reason),
		Fields: map[string]string{
			event.FieldType:     mailconv.TypeSystemMail,
			event.FieldHostname: host,
			"spool-id":          e.ID,
		},
	}
	if err := a.queue.Enqueue(ev, a.route(ev, "")); err != nil {
		return fmt.Errorf("queue the set-aside notice: %w", err)
	}
	a.metrics.Event(ev.Type(), ev.Severity.String())
	if err := a.spool.Quarantine(e, reason); err != nil {
		return err
	}
	a.spool.EndAttempts(e)
	a.log.Error("spool entry set aside", "spool_id", e.ID, "event_id", ev.ID, "reason", reason)
	a.queue.Kick()
	return nil
}

// ingest converts one entry, routes it and queues its deliveries durably
// before the entry leaves the spool. Processing an entry twice (a crash
// between Enqueue and Remove) yields the same event ID, and Enqueue leaves
// existing deliveries alone, so nothing is sent twice.
func (a *App) ingest(e spool.Entry) error {
	raw, mapped, err := a.readEntry(e) // bigmail.go
	if err != nil {
		if qerr := a.spool.Quarantine(e, err); qerr != nil {
			return fmt.Errorf("read: %v; quarantine: %w", err, qerr)
		}
		return nil
	}
	if mapped != nil {
		defer a.unmap(e, mapped)
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	}
	ev, classifier, setAside, err := a.convert(e, raw)
	if ev != nil && ev.Mail != nil && mapped != nil {
		ev.Mail.Open = mapped.Open
		defer func() { ev.Mail.Raw, ev.Mail.Open = nil, nil }()
	}
	if setAside {
		return err
	}
	if err != nil {
		a.log.Warn("spool entry quarantined", "spool_id", e.ID, "err", err)
		return a.spool.Quarantine(e, err)
	}
	setOrigin(ev, e, userName) // origin.go
	relayed, only := a.relayed(ev)
	targets := a.routeWith(ev, "", only)
	// Noise control records what it holds or counts before the rest is
	// queued; both are idempotent for an entry processed twice. The relay
	// of mail for remote recipients is the mail's own delivery, never held.
	now, decisions, err := a.noise.Process(a.Settings().Notify, ev, targets)
	if err != nil {
		return fmt.Errorf("noise: %w", err)
	}
	if relayed {
		targets = append(targets, relay.Name)
		now = append(now, relay.Name)
	}
	// Recorded first: once queued, the delivery's outcome may come at once.
	// Recording twice (the entry processed again) is harmless.
	a.history.Event(ev, targets, noiseRecords(decisions))
	if a.beforeEnqueue != nil {
		a.beforeEnqueue(e)
	}
	if err := a.queue.Enqueue(ev, now); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	// Fed before the entry leaves the spool: after a crash in between it
	// is fed again, which the engine recognises by the event ID.
	if err := a.monitors.Feed(ev); err != nil {
		return fmt.Errorf("monitors: %w", err)
	}
	if err := a.spool.Remove(e); err != nil {
		return fmt.Errorf("remove from spool: %w", err)
	}
	if src := e.Env.Source; src == "sendmail" || src == "notify" {
		a.metrics.Accepted(src) // smtp and http count when they answer
	}
	a.metrics.Event(ev.Type(), ev.Severity.String())
	a.log.Info("event", "event_id", ev.ID, "spool_id", e.ID, "source", e.Env.Source, "uid", ev.Fields[FieldUID],
		"type", ev.Type(), "severity", ev.Severity.String(), "classifier", classifier, "title", truncate(ev.Title, 120),
		"targets", strings.Join(targets, ","), "held", len(targets)-len(now))
	if len(now) > 0 {
		a.queue.Kick()
	}
	return nil
}

// toEvent makes the event of a spool entry. The event ID is the entry's
// (spool.Entry.EventID: the entry ID, or for a shim submission one derived
// from its submission ID) and its timestamp the time of receipt, so the
// result does not depend on when it is computed. classifier names the mail
// classifier that recognised a mail ("none" when none did, "-" for a
// submitted event).
func (a *App) toEvent(e spool.Entry, raw []byte) (ev *event.Event, classifier string, err error) {
	host := a.Settings().Daemon.Hostname
	switch e.Env.Kind {
	case spool.KindEvent:
		ev, err := event.Decode(raw)
		if err != nil {
			return nil, "", fmt.Errorf("event JSON: %w", err)
		}
		ev.ID = e.EventID()
		if id, ok := monitorEventID(e, raw); ok {
			ev.ID = id
		}
		event.Normalize(ev, host, e.Env.Received)
		return ev, "-", nil
	default:
		ev, res := mailconv.ConvertClassified(raw, mailconv.Options{ID: e.EventID(), Now: e.Env.Received, Hostname: host,
			Classifiers: Classifiers(a.Settings()), Log: a.log})
		ev.Mail.From = e.Env.From
		ev.Mail.Recipients = e.Env.Recipients
		ev.Mail.UID = e.Env.UID
		if uid, ok := e.Submitter(); ok {
			ev.Mail.UID = uid // a local client of the submission or SMTP socket
		}
		mailconv.RecordEnvelope(ev)
		return ev, res.Name(), nil
	}
}

// onDead emits herald's own delivery-failed event (delivery.FailedEvent)
// when a delivery gives up. It is routed like any other event but never to
// the target that failed.
func (a *App) onDead(d delivery.Delivery, orig *event.Event) {
	s := a.Settings()
	o := delivery.FailedOptions{Hostname: s.Daemon.Hostname, At: a.now(), Secrets: s.Notify.RevealSecrets()}
	if d.Target == relay.Name && orig != nil && orig.Mail != nil {
		// The relay's failure is the remote recipients' loss.
		o.Remote = s.LocalDomains().Remote(orig.Mail.Recipients)
	}
	ev := delivery.FailedEvent(d, orig, o)
	if ev == nil {
		return
	}
	targets := a.working(a.route(ev, d.Target))
	a.metrics.Event(ev.Type(), ev.Severity.String())
	if err := a.monitors.Feed(ev); err != nil {
		a.log.Error("delivery-failed event not fed to the monitors", "delivery_id", d.ID, "err", err)
	}
	a.history.Event(ev, targets, nil)
	if err := a.queue.Enqueue(ev, targets); err != nil {
		a.log.Error("could not queue delivery-failed event", "delivery_id", d.ID, "err", err)
		return
	}
	a.log.Warn("delivery failed for good", "delivery_id", d.ID, "event_id", d.EventID, "target", d.Target,
		"notified", strings.Join(targets, ","))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
