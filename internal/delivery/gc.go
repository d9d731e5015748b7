package delivery

import (
	"errors"
	"path/filepath"
	"time"
)

// This file holds garbage collection: finished deliveries are kept for a
// while (queue list --all), then their records and, once no delivery of
// an event is left, the event's files go. Locking: gc holds fileMu (no
// Enqueue or Drop runs meanwhile) and takes q.mu only to pick what to
// remove; the files are removed without it.

// gcInterval is how often Run removes expired done records.
const gcInterval = time.Minute

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
	var forgotten []string
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
		q.unref(e)
		if e.folded {
			// In the done log alone: forgetDone makes it forget.
			forgotten = append(forgotten, id)
			continue
		}
		c := byEv[e.rec.EventID]
		if c == nil {
			c = &collect{}
			byEv[e.rec.EventID] = c
		}
		c.recs = append(c.recs, q.recordPath(id))
		if e.listed {
			c.listed = append(c.listed, e.rec.Target)
		}
	}
	var whole []string // events whose files hold nothing else
	for evID := range byEv {
		if q.filed(evID) == 0 {
			whole = append(whole, evID)
		}
	}
	q.mu.Unlock()
	if len(forgotten) > 0 {
		q.forgetDone(forgotten)
	}
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
		gone := whole
		paths := make([]string, len(whole))
		for i, evID := range whole {
			paths[i] = q.eventPath(evID)
		}
		if err := q.removeFiles(evDir, paths); err != nil {
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
	if err := q.removeFiles(recDir, recs); err != nil {
		errs = append(errs, err)
	}
	if len(emls) > 0 {
		if err := q.removeFiles(evDir, emls); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// In memory they are collected; on disk what is left is loaded as
		// done at the next start, and collected again.
		q.log.Warn("cannot remove all delivered records", "err", err)
	}
	q.log.Debug("collected delivered records", "records", len(recs), "events", len(emls))
}
