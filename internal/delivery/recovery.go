package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"herald/internal/safeio"
	"herald/internal/target"
)

// This file holds recovery: reading the queue back at Open (events, their
// target lists, delivery records) and settling what a crash left in flight
// (a Verifier says whether it happened; otherwise the attempt is due
// again). It runs before the queue is shared, so it takes no lock beyond
// what Open holds.

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
		e := &entry{id: id, rec: *r, idx: -1, onDisk: true, recorded: r.State == StateDone}
		q.entries[id] = e
		q.ref(e)
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
			q.log.Error("cannot take deliveries with unreadable records off their event's list", "event_id", evID, "err", err)
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
			e := &entry{id: id, idx: -1, listed: true, rec: record{
				EventID: evID, Target: t.Name, State: StatePending, Created: t.Created, NextAttempt: t.Created,
			}}
			q.entries[id] = e
			q.ref(e)
		}
	}
	// Temporary files of writes that never committed: their writer was this
	// queue's owner, and we hold the lock, so it is gone.
	if len(stale)+len(staleRecs) > 0 {
		q.log.Info("removing uncommitted queue files", "count", len(stale)+len(staleRecs))
		err := errors.Join(q.removeFiles(evDir, stale), q.removeFiles(recDir, staleRecs))
		if err != nil {
			q.log.Warn("cannot remove uncommitted queue files", "err", err)
		}
	}
	if len(collected) > 0 {
		q.log.Info("removing delivered records whose event was collected", "count", len(collected))
		if err := q.removeFiles(recDir, collected); err != nil {
			q.log.Warn("cannot remove delivered records whose event was collected", "err", err)
		}
	}
	// Events without deliveries: written by an Enqueue before any record in
	// files without a target list (never acknowledged), or left by a
	// collection or drop that a crash interrupted.
	var orphans []string
	for id := range events {
		if len(q.byEvent[id]) == 0 {
			orphans = append(orphans, q.eventPath(id), q.mailPath(id))
		}
	}
	if len(orphans) > 0 {
		q.log.Info("removing events without deliveries", "count", len(orphans)/2)
		if err := q.removeFiles(evDir, orphans); err != nil {
			q.log.Warn("cannot remove events without deliveries", "err", err)
		}
	}
	// Delivered events folded into the done log, once the files have had
	// their say (donelog.go).
	q.loadDoneLog()
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
		log.Error("cannot record crash recovery", "err", err)
	}
}
