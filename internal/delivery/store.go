package delivery

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"herald/internal/event"
	"herald/internal/mmapfile"
	"herald/internal/safeio"
)

// On disk, under Options.Dir:
//
//	lock                    flock'ed by the one process that owns the queue
//	events/ID.json          the event (docs/interfaces.md §2 form), its mail's envelope,
//	                        and the targets it was queued for
//	events/ID.eml           the raw mail, when the event came from one of
//	                        more than inlineMax bytes (a smaller one is inside
//	                        the .json, "inline")
//	deliveries/ID.TARGET.json  a delivery's record, from its first attempt on
//	done.log                the events whose deliveries are all done, one line
//	                        each, once their files are gone (donelog.go)
//	quarantine/             unreadable files, moved aside with a log line;
//	                        the deliveries they held become dead letters
//	                        (corrupt.go)
//
// Every file is written whole, and removed, through the queue's journal
// (safeio.Journal in Dir/journal: one fdatasync shared by every write
// waiting, then temp file and rename; docs/durability.md). A mail up to
// inlineMax bytes is kept in the .json itself, so that the event costs one
// file, not two; a bigger one's .eml is written before the .json that commits it, and the
// .json names every target the event was queued for: a target named there
// without a record file is a pending delivery that was never attempted
// (created when it was queued, due then, no attempts). So Enqueue costs one
// durable write however many targets there are, and a crash leaves at worst
// an .eml without its .json, which Open removes: nobody was told it was
// queued. A record, once written, is the delivery's state; the list only
// says which deliveries exist. Dropping or collecting a delivery therefore
// takes its target off the list (rewriting the .json, an atomic rename)
// before its record goes, or removes the whole .json first when nothing else
// of the event remains, so that nothing ever implies a delivery that was
// dropped or collected. Event files written before the list existed have no
// "targets" field: their deliveries are their records alone.

const (
	eventsDir     = "events"
	recordsDir    = "deliveries"
	quarantineDir = "quarantine"
	lockName      = "lock"
	fileMode      = 0o600
	dirMode       = 0o700
)

// The delivery states.
const (
	StatePending  = "pending"  // waiting for its next attempt
	StateInflight = "inflight" // an attempt is running (or was, when the process died)
	StateDone     = "done"     // delivered; kept for a while so `herald queue` can show it
	StateDead     = "dead"     // given up; waits for `herald queue retry` or `drop`
)

// maxHistory bounds the attempts kept in a record.
const maxHistory = 20

// Attempt is one entry of a delivery's history.
type Attempt struct {
	Time time.Time `json:"time"`
	// Outcome is "delivered", "retry" (temporary failure), "dead", or
	// "interrupted" (found in flight after a crash; Error says what the
	// queue decided).
	Outcome  string        `json:"outcome"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// record is the JSON form of a delivery.
type record struct {
	EventID     string    `json:"event_id"`
	Target      string    `json:"target"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	Created     time.Time `json:"created"`
	NextAttempt time.Time `json:"next_attempt"`
	// RetrySince restarts the maximum age when an admin retries a dead
	// delivery.
	RetrySince time.Time `json:"retry_since,omitzero"`
	// Finished is when the delivery became done or dead.
	Finished  time.Time `json:"finished,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// DeadNotified is set once OnDead has run for a dead delivery, so a
	// crash in between makes it run again at the next start (the
	// delivery-failed event is not lost).
	DeadNotified bool      `json:"dead_notified,omitempty"`
	History      []Attempt `json:"history,omitempty"`
}

// ageBase is the time the maximum age counts from.
func (r *record) ageBase() time.Time {
	if r.RetrySince.After(r.Created) {
		return r.RetrySince
	}
	return r.Created
}

func (r *record) addHistory(a Attempt) {
	r.History = append(r.History, a)
	if n := len(r.History); n > maxHistory {
		r.History = append([]Attempt(nil), r.History[n-maxHistory:]...)
	}
}

// deliveryID names the delivery of event eventID to target.
func deliveryID(eventID, target string) string { return eventID + "." + target }

// splitID splits a delivery ID. Event IDs hold no '.', target names may.
func splitID(id string) (eventID, target string, ok bool) {
	eventID, target, ok = strings.Cut(id, ".")
	if !ok || validEventID(eventID) != nil || validTarget(target) != nil {
		return "", "", false
	}
	return eventID, target, true
}

// validEventID accepts what can safely be part of a file name and of a
// delivery ID: letters, digits, '-' and '_' (UUIDs), at most 128.
func validEventID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("invalid event id %q: want 1 to 128 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("invalid event id %q: only letters, digits, '-' and '_'", id)
		}
	}
	return nil
}

// validTarget accepts Proxmox's safe ID form: a letter, digit or '_',
// then also '.' and '-', at most 128.
func validTarget(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("invalid target name %q: want 1 to 128 characters", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			i > 0 && (c == '.' || c == '-')
		if !ok {
			return fmt.Errorf("invalid target name %q", name)
		}
	}
	return nil
}

// eventFile is the JSON form of events/ID.json.
type eventFile struct {
	Event json.RawMessage `json:"event"`
	Mail  *mailMeta       `json:"mail,omitempty"`
	// Targets lists the deliveries of the event, sorted by name, without
	// duplicates. Absent in files written before it existed.
	Targets []listedTarget `json:"targets,omitempty"`
}

// listedTarget is a delivery named by its event file: pending, due at
// Created and never attempted, until its record exists.
type listedTarget struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// mailMeta is the envelope of the mail whose bytes are in events/ID.eml,
// or in Inline.
type mailMeta struct {
	From       string   `json:"from"`
	Recipients []string `json:"recipients"`
	Size       int      `json:"size"`
	// UID is the submitting user (absent in files written before it was
	// recorded: only root and herald see those in mailq).
	UID *int `json:"uid,omitempty"`
	// Inline is the mail itself when it has at most inlineMax bytes
	// (base64 in the file); absent: the mail is events/ID.eml.
	Inline []byte `json:"inline,omitempty"`
}

// inlineMax is the largest mail kept inside its event file. Notification
// mail is small: a cron or backup report fits many times over, and each
// event then costs one new file instead of two (on ext4, creating an inode
// is the dearest part of queueing an event).
const inlineMax = 64 << 10

// storedMail says where an event's mail is: size bytes (-1: the event has
// none), inline or in events/ID.eml.
type storedMail struct {
	size   int
	inline []byte
}

func (q *Queue) eventPath(id string) string { return filepath.Join(q.dir, eventsDir, id+".json") }
func (q *Queue) mailPath(id string) string  { return filepath.Join(q.dir, eventsDir, id+".eml") }
func (q *Queue) recordPath(id string) string {
	return filepath.Join(q.dir, recordsDir, id+".json")
}

// writeEvent stores ev durably, queued for targets: the raw mail first,
// then the JSON that commits it.
func (q *Queue) writeEvent(ev *event.Event, targets []listedTarget) error {
	evJSON, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	ef := eventFile{Event: evJSON, Targets: targets}
	if ev.Mail == nil {
		return q.storeEventFile(ev.ID, &ef)
	}
	if ev.Mail.Open != nil {
		// A large mail the daemon mapped from its spool entry: copied file
		// to file the direct way (durable before the event file that
		// commits it), its bytes never passing through memory.
		if err := q.writeMail(ev); err != nil {
			return fmt.Errorf("store mail of event %s: %w", ev.ID, err)
		}
		uid := ev.Mail.UID
		ef.Mail = &mailMeta{From: ev.Mail.From, Recipients: ev.Mail.Recipients, Size: len(ev.Mail.Raw), UID: &uid}
		return q.storeEventFile(ev.ID, &ef)
	}
	uid := ev.Mail.UID
	ef.Mail = &mailMeta{From: ev.Mail.From, Recipients: ev.Mail.Recipients, Size: len(ev.Mail.Raw), UID: &uid}
	if len(ev.Mail.Raw) <= inlineMax {
		// Inline: one file, written and committed at once. (An empty mail
		// is inline too: Inline is then absent, and Size 0 says so.)
		ef.Mail.Inline = ev.Mail.Raw
		return q.storeEventFile(ev.ID, &ef)
	}
	b, err := json.Marshal(&ef)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	// One commit, the mail's record before the event file's: a torn tail
	// can keep the mail without its event (removed at Open), never the
	// reverse.
	// The mail is written in place: nobody reads it before the event file
	// that commits it exists. The event file is held (eventFileOp).
	if err := q.j.Apply(safeio.InPlaceOp(q.mailPath(ev.ID), ev.Mail.Raw, fileMode), eventFileOp(q.eventPath(ev.ID), b)); err != nil {
		return fmt.Errorf("store event %s and its mail: %w", ev.ID, err)
	}
	return nil
}

// writeMail stores the raw mail of ev durably as events/ID.eml. A mail
// the daemon mapped from its spool entry (event.Mail.Open) is copied file
// to file, so its bytes never pass through memory.
func (q *Queue) writeMail(ev *event.Event) error {
	src, err := ev.Mail.Open()
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	t, err := safeio.Create(q.mailPath(ev.ID), fileMode)
	if err != nil {
		return err
	}
	defer t.Abort()
	n, err := t.ReadFrom(src)
	if err != nil {
		return err
	}
	if n != int64(len(ev.Mail.Raw)) {
		return fmt.Errorf("copied %d bytes of a %d-byte mail", n, len(ev.Mail.Raw))
	}
	return t.Commit()
}

// eventFileOp and recordOp write an event file and a delivery record.
// Both are held by the journal until its next checkpoint
// (safeio.Op.Held): while the daemon runs they are read only through it
// (readFile, version), so an attempt's in-flight record and its outcome
// make one file, and no attempt waits for a file to be created. (Done
// deliveries and their events are kept for DoneRetention, so most are
// still written out, at the checkpoint.) They are written out in place:
// no reader looks at the directory for them while the daemon runs.
func eventFileOp(path string, b []byte) safeio.Op { return safeio.InPlaceOp(path, b, fileMode).Held() }
func recordOp(path string, b []byte) safeio.Op    { return safeio.InPlaceOp(path, b, fileMode).Held() }

// readFile reads a file of the queue as its journal left it (os.ReadFile
// for the read-only view, which has none).
func (q *Queue) readFile(path string) ([]byte, error) {
	if q.j == nil {
		return os.ReadFile(path)
	}
	return q.j.ReadFile(path)
}

// version identifies the current content of a file of the queue.
func (q *Queue) version(path string) (safeio.FileVersion, bool) {
	if q.j == nil {
		return safeio.StatVersion(path)
	}
	return q.j.Version(path)
}

// storeEventFile writes events/ID.json durably and atomically.
func (q *Queue) storeEventFile(id string, ef *eventFile) error {
	b, err := json.Marshal(ef)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", id, err)
	}
	if err := q.j.Apply(eventFileOp(q.eventPath(id), b)); err != nil {
		return fmt.Errorf("store event %s: %w", id, err)
	}
	return nil
}

// rewriteTargets changes the target list of a stored event: add (sorted)
// joins it, the names in drop leave it. The event and its mail's envelope
// are kept byte for byte, and the .eml is not touched. The caller
// serialises writers of the event's file (eventMu under fileMu's read
// lock, or fileMu's write lock).
func (q *Queue) rewriteTargets(id string, add []listedTarget, drop []string) error {
	ef, err := q.readEventFile(id)
	if err != nil {
		return err
	}
	list := slices.DeleteFunc(ef.Targets, func(t listedTarget) bool { return slices.Contains(drop, t.Name) })
	for _, t := range add {
		i, found := slices.BinarySearchFunc(list, t.Name, func(l listedTarget, n string) int { return strings.Compare(l.Name, n) })
		if found {
			list[i] = t // left by a write that failed: what the caller queues now wins
		} else {
			list = slices.Insert(list, i, t)
		}
	}
	ef.Targets = list
	return q.storeEventFile(id, ef)
}

// readEventFile loads and checks events/ID.json (not the mail).
func (q *Queue) readEventFile(id string) (*eventFile, error) {
	b, err := q.readFile(q.eventPath(id))
	if err != nil {
		return nil, err
	}
	var ef eventFile
	if err := json.Unmarshal(b, &ef); err != nil {
		return nil, fmt.Errorf("event file %s: %w", q.eventPath(id), err)
	}
	for i, t := range ef.Targets {
		if err := validTarget(t.Name); err != nil {
			return nil, fmt.Errorf("event file %s: %w", q.eventPath(id), err)
		}
		if t.Created.IsZero() {
			return nil, fmt.Errorf("event file %s: target %s has no creation time", q.eventPath(id), t.Name)
		}
		if i > 0 && ef.Targets[i-1].Name >= t.Name {
			return nil, fmt.Errorf("event file %s: target list not sorted or not unique at %s", q.eventPath(id), t.Name)
		}
	}
	return &ef, nil
}

// readEvent loads an event; withMail also reads the raw mail.
func (q *Queue) readEvent(id string, withMail bool) (*event.Event, error) {
	ev, _, err := q.readEventAndTargets(id, withMail)
	return ev, err
}

// readEventAndTargets loads an event and its target list; withMail also
// reads the raw mail.
func (q *Queue) readEventAndTargets(id string, withMail bool) (*event.Event, []listedTarget, error) {
	ev, listed, _, err := q.loadEvent(id, withMail, false)
	return ev, listed, err
}

// loadEvent is readEventAndTargets; with mapLarge, a mail of mmapfile.Min
// bytes or more is mapped instead of read (mapped.go).
func (q *Queue) loadEvent(id string, withMail, mapLarge bool) (*event.Event, []listedTarget, *mmapfile.Mapping, error) {
	ev, targets, sm, err := q.decodeEvent(id)
	if err != nil {
		return nil, nil, nil, err
	}
	var mapped *mmapfile.Mapping
	if withMail && ev.Mail != nil {
		if mapped, err = q.attachMail(ev, sm, mapLarge); err != nil {
			return nil, nil, nil, err
		}
	}
	return ev, targets, mapped, nil
}

// decodeEvent reads events/ID.json: the event (its mail's envelope, not
// the mail), its target list and where its mail is.
func (q *Queue) decodeEvent(id string) (*event.Event, []listedTarget, storedMail, error) {
	none := storedMail{size: -1}
	ef, err := q.readEventFile(id)
	if err != nil {
		return nil, nil, none, err
	}
	ev := new(event.Event)
	if err := json.Unmarshal(ef.Event, ev); err != nil {
		return nil, nil, none, fmt.Errorf("event file %s: %w", q.eventPath(id), err)
	}
	if ev.ID != id {
		return nil, nil, none, fmt.Errorf("event file %s holds event %q", q.eventPath(id), ev.ID)
	}
	if ef.Mail == nil {
		return ev, ef.Targets, none, nil
	}
	ev.Mail = &event.Mail{From: ef.Mail.From, Recipients: ef.Mail.Recipients, UID: -1}
	if ef.Mail.UID != nil {
		ev.Mail.UID = *ef.Mail.UID
	}
	return ev, ef.Targets, storedMail{size: ef.Mail.Size, inline: ef.Mail.Inline}, nil
}

// attachMail loads the raw mail of ev (where and how big its event file
// says) into ev.Mail; with mapLarge, a mail of mmapfile.Min bytes or more
// is mapped instead of read, and the mapping returned (mapped.go).
func (q *Queue) attachMail(ev *event.Event, sm storedMail, mapLarge bool) (*mmapfile.Mapping, error) {
	size := sm.size
	if sm.inline != nil || size == 0 {
		// Inline (an empty mail is, whatever wrote it). A copy: the
		// cache keeps the bytes it was given.
		if len(sm.inline) != size {
			return nil, fmt.Errorf("mail of event %s: %d bytes inline, want %d", ev.ID, len(sm.inline), size)
		}
		ev.Mail.Raw = append([]byte{}, sm.inline...)
		return nil, nil
	}
	if mapLarge && size >= mmapfile.Min {
		m, err := mmapfile.Map(q.mailPath(ev.ID), 0, int64(size))
		if err == nil {
			ev.Mail.Raw, ev.Mail.Open = m.Bytes, m.Open
			return m, nil
		}
		// Read it instead: the read below reports a missing or damaged
		// file the way it always has.
		q.log.Warn("cannot map a large mail; reading it", "event_id", ev.ID, "err", err)
	}
	raw, err := os.ReadFile(q.mailPath(ev.ID))
	if err != nil {
		return nil, fmt.Errorf("mail of event %s: %w", ev.ID, err)
	}
	if len(raw) != size {
		return nil, fmt.Errorf("mail of event %s: %d bytes, want %d", ev.ID, len(raw), size)
	}
	ev.Mail.Raw = raw
	return nil, nil
}

// writeRecord stores a delivery record durably.
func (q *Queue) writeRecord(r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	id := deliveryID(r.EventID, r.Target)
	// Held (recordOp): a record is read only by Open (after the journal's
	// replay) and by the offline view of a stopped daemon, so an
	// attempt's two writes make one file, written at the checkpoint.
	if err := q.j.Apply(recordOp(q.recordPath(id), b)); err != nil {
		return fmt.Errorf("store delivery %s: %w", id, err)
	}
	return nil
}

// readRecord loads and checks a record file.
func readRecord(path, id string) (*record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseRecord(b, id)
}

// parseRecord decodes and checks the record of delivery id.
func parseRecord(b []byte, id string) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if deliveryID(r.EventID, r.Target) != id {
		return nil, fmt.Errorf("record names delivery %q", deliveryID(r.EventID, r.Target))
	}
	switch r.State {
	case StatePending, StateInflight, StateDone, StateDead:
	default:
		return nil, fmt.Errorf("unknown state %q", r.State)
	}
	return &r, nil
}

// quarantine moves an unreadable file aside, never deleting it, and
// returns where it went ("" when it could not be moved).
func (q *Queue) quarantine(path string, why error) string {
	dst, err := safeio.MoveAside(path, filepath.Join(q.dir, quarantineDir), filepath.Base(path), dirMode)
	if err != nil {
		q.log.Error("cannot move unreadable queue file aside", "path", path, "reason", why.Error(), "err", err)
		return ""
	}
	q.log.Warn("moved unreadable queue file to quarantine", "path", path, "to", dst, "reason", why.Error())
	return dst
}

// removeFiles removes paths (all in dir) with one journal commit, so that
// the removals are durable before anything that depends on them.
func (q *Queue) removeFiles(dir string, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	if err := q.j.Remove(paths...); err != nil {
		return fmt.Errorf("remove from %s: %w", dir, err)
	}
	return nil
}
