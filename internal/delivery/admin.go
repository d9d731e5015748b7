package delivery

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"herald/internal/event"
)

// This file holds the queue's admin views and actions that an MTA's admin
// expects (docs/mta.md): flush (Postfix's postqueue -f), mailq's per-mail
// view, and a read-only view for when no daemon owns the queue. Locking:
// Flush takes mu like Retry; Items takes mu to copy the deliveries, then
// reads event files without it (Drop and gc may remove one meanwhile: that
// mail is then simply gone from the listing).

// Item is one queued mail or event with its deliveries that are not done:
// what mailq lists.
type Item struct {
	EventID    string     `json:"event_id"`
	Title      string     `json:"title"`
	Created    time.Time  `json:"created"`
	From       string     `json:"from"`
	Recipients []string   `json:"recipients,omitempty"`
	Size       int        `json:"size"`
	UID        int        `json:"uid"` // submitting user; -1 unknown (an event, or an old file)
	Deliveries []Delivery `json:"deliveries"`
}

// Items returns the events with deliveries pending, in flight or dead,
// oldest first.
func (q *Queue) Items() ([]Item, error) {
	ds, err := q.List()
	if err != nil {
		return nil, err
	}
	return itemsOf(q, ds), nil
}

func itemsOf(q *Queue, ds []Delivery) []Item {
	byEvent := map[string][]Delivery{}
	var order []string
	for _, d := range ds {
		if d.State == StateDone {
			continue
		}
		if _, ok := byEvent[d.EventID]; !ok {
			order = append(order, d.EventID)
		}
		byEvent[d.EventID] = append(byEvent[d.EventID], d)
	}
	var out []Item
	for _, id := range order {
		ef, err := q.readEventFile(id)
		if err != nil {
			continue // dropped or collected meanwhile
		}
		var ev struct{ Title string }
		_ = json.Unmarshal(ef.Event, &ev) // a title is all mailq wants; none is fine
		it := Item{EventID: id, Title: ev.Title, UID: -1, Deliveries: byEvent[id], Created: byEvent[id][0].Created}
		if ef.Mail != nil {
			it.From, it.Recipients, it.Size = ef.Mail.From, ef.Mail.Recipients, ef.Mail.Size
			if ef.Mail.UID != nil {
				it.UID = *ef.Mail.UID
			}
		} else {
			it.Size = len(ef.Event)
		}
		out = append(out, it)
	}
	return out
}

// ReadOnly is a view of a queue directory that no process may own: it
// reads the files as they are, creates nothing, takes no lock and recovers
// nothing, for `herald queue list` and mailq while the daemon is stopped
// (so a root admin never leaves root-owned files behind). A directory that
// does not exist is an empty queue.
type ReadOnly struct{ q *Queue }

// OpenReadOnly returns the read-only view of the queue in dir.
func OpenReadOnly(dir string) ReadOnly {
	return ReadOnly{&Queue{dir: dir, log: slog.New(slog.DiscardHandler)}}
}

// List returns every delivery on disk, oldest first: recorded ones, those
// an event file lists without a record (pending, never attempted), and the
// delivered ones the done log keeps.
func (r ReadOnly) List() ([]Delivery, error) {
	q := r.q
	evNames, err := readDirNames(filepath.Join(q.dir, eventsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	recs := map[string]Delivery{}
	recNames, err := readDirNames(filepath.Join(q.dir, recordsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	for _, name := range recNames {
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		rec, err := readRecord(q.recordPath(id), id)
		if err != nil {
			continue
		}
		e := entry{id: id, rec: *rec}
		recs[id] = e.delivery()
	}
	var out []Delivery
	seen := map[string]bool{}
	for _, name := range evNames {
		evID, ok := strings.CutSuffix(name, ".json")
		if !ok || validEventID(evID) != nil {
			continue
		}
		ef, err := q.readEventFile(evID)
		if err != nil {
			continue
		}
		for _, t := range ef.Targets {
			id := deliveryID(evID, t.Name)
			seen[id] = true
			if d, ok := recs[id]; ok {
				out = append(out, d)
				continue
			}
			out = append(out, Delivery{ID: id, EventID: evID, Target: t.Name, State: StatePending,
				Created: t.Created, NextAttempt: t.Created})
		}
		for id, d := range recs {
			if d.EventID == evID && !seen[id] {
				seen[id] = true
				out = append(out, d)
			}
		}
	}
	// Delivered events folded into the done log: what the files above do
	// not hold (donelog.go).
	folded, err := readDoneLog(q.dir)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	for id, rec := range folded {
		if !seen[id] {
			e := entry{id: id, rec: *rec}
			out = append(out, e.delivery())
		}
	}
	slices.SortFunc(out, func(a, b Delivery) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Items is Queue.Items for the read-only view.
func (r ReadOnly) Items() ([]Item, error) {
	ds, err := r.List()
	if err != nil {
		return nil, err
	}
	return itemsOf(r.q, ds), nil
}

// Get is Queue.Get for the read-only view.
func (r ReadOnly) Get(id string) (Delivery, *event.Event, error) {
	ds, err := r.List()
	if err != nil {
		return Delivery{}, nil, err
	}
	for _, d := range ds {
		if d.ID == id {
			ev, err := r.q.shownEvent(d)
			if err != nil {
				return d, nil, fmt.Errorf("delivery %s: %w", id, err)
			}
			return d, ev, nil
		}
	}
	return Delivery{}, nil, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
}

// Exists reports whether dir holds a queue (a daemon has run on it).
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, lockName))
	return err == nil
}

// Stats are the queue's figures for metrics and health checks.
type Stats struct {
	Pending, Inflight, Dead, Done int
	// OldestPending is the age of the oldest delivery not yet done or dead.
	OldestPending time.Duration
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
	ev, err := q.shownEvent(d)
	if err != nil {
		return d, nil, fmt.Errorf("delivery %s: %w", id, err)
	}
	return d, ev, nil
}

// shownEvent loads the event of d, with its mail, for `herald queue show`:
// from its files or, once d is folded (or being folded), from the done
// log, which keeps the event without its mail.
func (q *Queue) shownEvent(d Delivery) (*event.Event, error) {
	ev, err := q.readEvent(d.EventID, true)
	if err != nil && d.State == StateDone && errors.Is(err, fs.ErrNotExist) {
		return doneEvent(q.doneLogPath(), d.EventID)
	}
	return ev, err
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
		return fmt.Errorf("delivery %s: %w", id, ErrDelivered)
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
		return fmt.Errorf("delivery %s: %w", id, ErrDelivered)
	}
	// Removed from memory first (under mu) so the loop cannot dispatch it.
	q.remove(e)
	delete(q.entries, id)
	q.unref(e)
	// The event's files go with the last delivery they hold; folded
	// ones (donelog.go) do not need them.
	lastRef := q.filed(e.rec.EventID) == 0
	rec, listed, onDisk := e.rec, e.listed, e.onDisk
	q.mu.Unlock()
	evDir, recDir := filepath.Join(q.dir, eventsDir), filepath.Join(q.dir, recordsDir)
	if lastRef && !onDisk {
		// The event file is all there is: removing it drops the delivery.
		if err := q.removeFiles(evDir, []string{q.eventPath(rec.EventID), q.mailPath(rec.EventID)}); err != nil {
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
		if err := q.removeFiles(recDir, []string{q.recordPath(id)}); err != nil {
			return fmt.Errorf("delivery: drop %s: %w", id, err)
		}
		if lastRef {
			if err := q.removeFiles(evDir, []string{q.eventPath(rec.EventID), q.mailPath(rec.EventID)}); err != nil {
				q.log.Warn("cannot remove dropped event's files", "event_id", rec.EventID, "err", err)
			}
		}
	}
	q.log.Info("delivery dropped", "event_id", rec.EventID, "delivery_id", id, "target", rec.Target, "state", rec.State)
	return nil
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
		if tq.inflight == 0 && len(tq.pending) > 0 && now.Sub(tq.pending[0].rec.NextAttempt) > maxStall &&
			q.freeSlots(q.isLocal(tq.name)) > 0 {
			return false
		}
	}
	return true
}
