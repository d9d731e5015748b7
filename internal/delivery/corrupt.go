package delivery

// Corrupt queue files are not silent. A delivery record that cannot be
// read, or an event file that cannot be read (or is gone) while records
// still name it, used to be quarantined and its deliveries vanished: no
// dead letter, no event, nothing in `herald queue list` or the metrics.
// Open now turns each such delivery into a dead letter whose error says
// what was found and where the file went, so OnDead emits the
// delivery-failed event and the queue's figures count it:
//
//   - an unreadable record of a readable event: a dead record for the same
//     (event, target) replaces it; whether the attempt it recorded
//     happened is unknown, so nothing is sent again until an admin says so
//     (`herald queue retry`);
//   - an unreadable or missing event file: a stand-in event file takes its
//     place (the original is in quarantine/), listing the targets that can
//     still be known — from the records that name the event and from what
//     is left of the file's target list — and each of those deliveries is
//     dead (a done one stays done). When no target can be known, the dead
//     letter names the target unknownTarget.
//
// Everything here runs inside Open, before the queue is shared.

import (
	"encoding/json"
	"fmt"
	stdmaps "maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"herald/internal/event"
)

// unknownTarget names the delivery of a lost event whose targets cannot be
// known any more. No configured target can have this name (section names
// start with a letter or digit).
const unknownTarget = "_unknown"

// brokenEvent is an event whose file is unusable while deliveries name it.
type brokenEvent struct {
	why     string
	targets []listedTarget // salvaged from the damaged file's target list
	records []*record      // readable records that name it
	bad     map[string]string
}

// salvageTargetsRe matches one entry of an event file's target list.
var salvageTargetsRe = regexp.MustCompile(`\{"name":"([^"\\]+)","created":"([^"\\]+)"\}`)

// salvageTargets recovers what it can of the target list of a damaged
// event file (the list comes last, so a truncated file often keeps part).
func salvageTargets(raw []byte) []listedTarget {
	i := strings.LastIndex(string(raw), `"targets":[`)
	if i < 0 {
		return nil
	}
	var out []listedTarget
	for _, m := range salvageTargetsRe.FindAllStringSubmatch(string(raw[i:]), -1) {
		created, err := time.Parse(time.RFC3339Nano, m[2])
		if err != nil || validTarget(m[1]) != nil {
			continue
		}
		out = append(out, listedTarget{Name: m[1], Created: created})
	}
	return out
}

// deadLetterCorrupt turns the deliveries of quarantined records (bad, per
// event and target: why) and of broken events into dead letters. It adds
// what it writes to q.entries and events, and takes the targets it
// handled out of unreadable (they keep their place on the list).
func (q *Queue) deadLetterCorrupt(events map[string][]listedTarget, broken map[string]*brokenEvent,
	bad map[string]map[string]string, unreadable map[string][]string) {
	now := q.now()
	for evID, byTarget := range bad {
		if b := broken[evID]; b != nil {
			b.bad = byTarget
			continue
		}
		listed, ok := events[evID]
		if !ok {
			continue // no event at all and no readable record: nothing owed is known
		}
		for _, tg := range slices.Sorted(stdmaps.Keys(byTarget)) {
			created := now
			if i := slices.IndexFunc(listed, func(t listedTarget) bool { return t.Name == tg }); i >= 0 {
				created = listed[i].Created
			}
			why := byTarget[tg] + "; whether it was delivered is unknown, so it is not sent again unless retried"
			if q.addDead(evID, tg, created, 0, why) {
				unreadable[evID] = slices.DeleteFunc(unreadable[evID], func(n string) bool { return n == tg })
			}
		}
	}
	for _, evID := range slices.Sorted(stdmaps.Keys(broken)) {
		b := broken[evID]
		created := map[string]time.Time{}
		for _, t := range b.targets {
			created[t.Name] = t.Created
		}
		byTarget := map[string]*record{}
		for _, r := range b.records {
			created[r.Target] = r.Created
			if r.Created.IsZero() {
				created[r.Target] = now
			}
			byTarget[r.Target] = r
		}
		for tg := range b.bad {
			if _, ok := created[tg]; !ok {
				created[tg] = now
			}
		}
		if len(created) == 0 {
			created[unknownTarget] = now
		}
		var list []listedTarget
		for _, n := range slices.Sorted(stdmaps.Keys(created)) {
			list = append(list, listedTarget{Name: n, Created: created[n]})
		}
		stand := &event.Event{
			ID: evID, Timestamp: now.Truncate(time.Second), Severity: event.Error,
			Title:  fmt.Sprintf("queued event %s was lost", evID),
			Body:   fmt.Sprintf("herald could not deliver queued event %s: %s.\n", evID, b.why),
			Fields: map[string]string{event.FieldType: "queue-corrupt"},
		}
		evJSON, err := json.Marshal(stand)
		if err == nil {
			err = q.storeEventFile(evID, &eventFile{Event: evJSON, Targets: list})
		}
		if err != nil {
			// The records stay as they are; the next start tries again.
			q.log.Error("cannot write a stand-in for a lost event; its deliveries wait for the next start",
				"event_id", evID, "reason", b.why, "err", err)
			continue
		}
		events[evID] = list
		delete(unreadable, evID)
		for _, t := range list {
			r := byTarget[t.Name]
			if r != nil && r.State == StateDone {
				e := &entry{id: deliveryID(evID, t.Name), rec: *r, idx: -1, onDisk: true, recorded: true}
				q.entries[e.id] = e
				q.ref(e)
				continue
			}
			why, attempts := b.why, 0
			if r != nil {
				attempts = r.Attempts
			}
			if w, ok := b.bad[t.Name]; ok {
				why = w + "; " + b.why
			}
			q.addDead(evID, t.Name, t.Created, attempts, why+"; the notification itself cannot be sent")
		}
	}
}

// addDead writes a dead record for (evID, tg) and adds it to the queue in
// memory; false when the record could not be written.
func (q *Queue) addDead(evID, tg string, created time.Time, attempts int, why string) bool {
	now := q.now()
	r := record{EventID: evID, Target: tg, State: StateDead, Attempts: attempts,
		Created: created, NextAttempt: created, Finished: now, LastError: why}
	r.addHistory(Attempt{Time: now, Outcome: "dead", Error: why})
	if err := q.writeRecord(&r); err != nil {
		q.log.Error("cannot record a dead letter for a damaged queue file", "event_id", evID, "target", tg, "reason", why, "err", err)
		return false
	}
	id := deliveryID(evID, tg)
	if old, ok := q.entries[id]; ok {
		q.unref(old)
	}
	e := &entry{id: id, rec: r, idx: -1, onDisk: true}
	q.entries[id] = e
	q.ref(e)
	q.damaged = append(q.damaged, e)
	q.log.Error("delivery dead: damaged queue file", "event_id", evID, "delivery_id", id, "target", tg, "reason", why)
	return true
}
