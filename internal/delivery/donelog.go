package delivery

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	stdmaps "maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/safeio"
)

// This file holds the done log, Dir/done.log: once every delivery of an
// event is done (its done record committed), the event is folded: one
// line holding the event (without its mail) and its deliveries' records is
// appended to the log and fdatasync'ed, and only then are the event's
// files and records removed, with one journal commit. A backlog's events
// are folded within moments of their last delivery, while their files are
// still held by the journal (safeio.Op.Held), so a delivered event
// usually never becomes a file at all: on ext4 creating an inode is the
// dearest part of a delivery (docs/durability.md, "The done log").
//
// Folded deliveries stay in memory as done, so that Enqueue stays
// idempotent and `herald queue list --all` shows them, until garbage
// collection drops them after DoneRetention and appends a "forget" line
// naming them, so that a restart does not bring them back; gc compacts
// the log once most of its lines are of deliveries no longer kept.
//
// Order and crashes: a line is durable before the files it replaces are
// removed, and the removal takes the event files before the records (one
// journal commit, whose torn tail keeps a prefix). At Open, a delivery's
// files win over the log (a crash after the append but before the removal
// leaves both, saying the same), and a done record whose event file is
// gone is a leftover that the log covers. A line's delivery whose files
// exist again later (the event queued anew after gc forgot it) is
// likewise decided by its files. A torn last line is cut off at Open.

const doneLogName = "done.log"

// doneLine is one line of the done log: a folded event, or the
// deliveries gc forgot.
type doneLine struct {
	EventID string `json:"event_id,omitempty"`
	// Event is the event as its file held it (docs/interfaces.md §2
	// form), for `herald queue show`; the mail itself is not kept.
	Event   json.RawMessage `json:"event,omitempty"`
	Records []record        `json:"records,omitempty"`
	// Forget names deliveries gc collected after the retention: the
	// lines before it no longer speak for them (a line of its own).
	Forget []string `json:"forget,omitempty"`
}

// foldView is what a fold needs of an event file: the event as the file
// has it, and whether the mail has a file of its own. An inline mail's
// bytes are skipped, not decoded (eventFile's Inline is []byte).
type foldView struct {
	Event json.RawMessage `json:"event"`
	Mail  *struct {
		Size   int             `json:"size"`
		Inline json.RawMessage `json:"inline"`
	} `json:"mail"`
}

// doneLog is the append side of the done log. Guarded by Queue.doneMu.
type doneLog struct {
	f     *os.File // nil when it could not be opened: nothing is folded
	size  int64
	lines int // lines in the file, for compaction
}

func (q *Queue) doneLogPath() string { return filepath.Join(q.dir, doneLogName) }

// openDoneLog opens the done log for reading and appending, creating it
// (durably) when missing.
func (q *Queue) openDoneLog() (*os.File, error) {
	return safeio.OpenAppend(q.doneLogPath(), os.O_RDWR|unix.O_NOFOLLOW, fileMode)
}

// eachLine calls fn with every whole line of r (its offset and bytes, the
// newline included) and returns the bytes up to the end of the last one:
// what follows it is a torn line. fn's error stops the reading.
func eachLine(r io.Reader, fn func(off int64, line []byte) error) (size int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return size, nil
		}
		if err != nil {
			return 0, err
		}
		if err := fn(size, line); err != nil {
			return 0, err
		}
		size += int64(len(line))
	}
}

// loadDoneLog reads the done log at Open: the folded deliveries that the
// queue's files do not hold become done entries in memory. A torn last
// line is cut off. The log is then opened for appending; if it cannot be,
// events are simply not folded (their files stay until gc).
func (q *Queue) loadDoneLog() {
	path := q.doneLogPath()
	// A compaction's temporary file that a crash left behind.
	stale, _ := filepath.Glob(filepath.Join(q.dir, safeio.TempPrefix+doneLogName+"-*"))
	for _, p := range stale {
		_ = os.Remove(p)
	}
	f, err := q.openDoneLog()
	if err != nil {
		q.log.Error("cannot open the done log; delivered events keep their files until collected", "path", path, "err", err)
		return
	}
	size, lines, bad, recs, err := scanDoneLog(f, q.log.Warn)
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() > size {
			q.log.Warn("cutting a torn line off the done log", "path", path, "bytes", st.Size()-size)
			err = safeio.CutBack(f, size, nil)
		}
	}
	if err == nil && bad > 0 {
		f, size, lines, err = q.setAsideDamagedLog(f, size, lines, recs)
	}
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		q.log.Error("cannot read the done log; delivered events keep their files until collected", "path", path, "err", err)
		return
	}
	q.done = doneLog{f: f, size: size, lines: lines}
	for _, id := range slices.Sorted(stdmaps.Keys(recs)) {
		if _, ok := q.entries[id]; ok {
			continue // its files decide
		}
		e := &entry{id: id, rec: *recs[id], idx: -1, recorded: true, folded: true}
		q.entries[id] = e
		q.ref(e)
	}
}

// setAsideDamagedLog keeps the done log as it is in quarantine (a hard
// link) and replaces it with its readable lines (the last of each event),
// so that nothing is deleted and the log in use is clean. It returns the
// new log, opened for appending.
func (q *Queue) setAsideDamagedLog(f *os.File, size int64, lines int, recs map[string]*record) (*os.File, int64, int, error) {
	path := q.doneLogPath()
	dst, err := safeio.LinkAside(path, filepath.Join(q.dir, quarantineDir), doneLogName, dirMode)
	if err != nil {
		// Kept in place, unreadable lines and all: nothing is lost.
		q.log.Error("cannot set the damaged done log aside; using its readable lines", "path", path, "err", err)
		return f, size, lines, nil
	}
	live := map[string]bool{}
	for id := range recs {
		live[id] = true
	}
	n, newSize, err := rewriteDoneLog(path, size, live)
	if err != nil {
		return f, 0, 0, err
	}
	_ = f.Close()
	nf, err := q.openDoneLog()
	if err != nil {
		return nil, 0, 0, err
	}
	q.log.Warn("set the damaged done log aside and kept its readable lines", "path", path, "to", dst, "lines", n)
	return nf, newSize, n, nil
}

// scanDoneLog reads a done log from its start: the bytes up to the end of
// its last whole line, the lines, how many of them could not be read
// (reported through warn and skipped), and the last record per delivery ID.
func scanDoneLog(r io.Reader, warn func(msg string, args ...any)) (size int64, lines, bad int, recs map[string]*record, err error) {
	recs = map[string]*record{}
	size, err = eachLine(r, func(_ int64, line []byte) error {
		lines++
		var dl doneLine
		if err := json.Unmarshal(line, &dl); err != nil {
			warn("skipping an unreadable line of the done log", "line", lines, "err", err)
			bad++
			return nil
		}
		for _, id := range dl.Forget {
			delete(recs, id)
		}
		for i := range dl.Records {
			r := &dl.Records[i]
			id := deliveryID(r.EventID, r.Target)
			if r.EventID != dl.EventID || r.State != StateDone || validEventID(r.EventID) != nil || validTarget(r.Target) != nil {
				warn("skipping a record of the done log", "line", lines, "delivery_id", id, "state", r.State)
				continue
			}
			recs[id] = r
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, nil, err
	}
	return size, lines, bad, recs, nil
}

// noteRecorded marks e's done record as committed and, once every
// delivery of its event is, queues the event for folding.
func (q *Queue) noteRecorded(e *entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.rec.State != StateDone || q.entries[e.id] != e {
		return
	}
	e.recorded = true
	if q.foldable(e.rec.EventID) {
		q.foldWant[e.rec.EventID] = struct{}{}
		select {
		case q.foldKick <- struct{}{}:
		default:
		}
	}
}

// foldable reports whether every delivery of event id is done, durably,
// and some are still in its files. Caller holds mu.
func (q *Queue) foldable(id string) bool {
	es := q.byEvent[id]
	filed := false
	for _, e := range es {
		if e.rec.State != StateDone || !(e.recorded || e.folded) {
			return false
		}
		filed = filed || !e.folded
	}
	return filed
}

// folder folds the events queued for it until stop is closed.
func (q *Queue) folder(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-q.foldKick:
			q.fold()
		}
	}
}

// fold folds the events queued for it (see the top of this file).
func (q *Queue) fold() {
	q.mu.Lock()
	ids := slices.Collect(stdmaps.Keys(q.foldWant))
	clear(q.foldWant)
	q.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids) // the order the event locks are taken in
	q.fileMu.RLock()
	defer q.fileMu.RUnlock()
	for _, id := range ids {
		defer q.eventMu.lock(id)()
	}

	type folding struct {
		id      string
		entries []*entry
		line    doneLine
		records []string // record files to remove
		eml     bool     // the mail is in its own .eml
	}
	var batch []*folding
	q.mu.Lock()
	for _, id := range ids {
		if !q.foldable(id) {
			continue // a target was added meanwhile, or gc took it
		}
		f := &folding{id: id, entries: slices.Clone(q.byEvent[id])}
		slices.SortFunc(f.entries, func(a, b *entry) int { return strings.Compare(a.id, b.id) })
		for _, e := range f.entries {
			f.line.Records = append(f.line.Records, e.rec)
			if !e.folded && e.onDisk {
				f.records = append(f.records, q.recordPath(e.id))
			}
		}
		batch = append(batch, f)
	}
	q.mu.Unlock()

	var buf bytes.Buffer
	kept := batch[:0]
	for _, f := range batch {
		var ef foldView
		b, err := q.readFile(q.eventPath(f.id))
		if err == nil {
			err = json.Unmarshal(b, &ef)
		}
		if err == nil && ef.Event == nil {
			err = errors.New("no event in its file")
		}
		if err != nil {
			q.log.Warn("cannot fold a delivered event; its files stay until collected", "event_id", f.id, "err", err)
			continue
		}
		f.line.EventID, f.line.Event = f.id, ef.Event
		f.eml = ef.Mail != nil && ef.Mail.Inline == nil && ef.Mail.Size > 0
		b, err = json.Marshal(&f.line)
		if err != nil {
			q.log.Warn("cannot fold a delivered event; its files stay until collected", "event_id", f.id, "err", err)
			continue
		}
		buf.Write(b)
		buf.WriteByte('\n')
		kept = append(kept, f)
	}
	batch = kept
	if len(batch) == 0 {
		return
	}
	if err := q.appendDone(buf.Bytes(), len(batch)); err != nil {
		q.log.Warn("cannot append to the done log; delivered events keep their files until collected", "events", len(batch), "err", err)
		return
	}
	// The event files first, then the records: a torn commit may keep
	// done records without their event (a leftover Open removes), never
	// an event listing targets whose records are gone.
	paths := make([]string, 0, 3*len(batch))
	for _, f := range batch {
		paths = append(paths, q.eventPath(f.id))
		if f.eml {
			paths = append(paths, q.mailPath(f.id))
		}
	}
	for _, f := range batch {
		paths = append(paths, f.records...)
	}
	if err := q.j.Remove(paths...); err != nil {
		// Nothing was removed: the files and the log say the same.
		q.log.Warn("cannot remove the files of folded events; they stay until collected", "events", len(batch), "err", err)
		return
	}
	q.mu.Lock()
	for _, f := range batch {
		for _, e := range f.entries {
			e.folded, e.listed, e.onDisk = true, false, false
		}
	}
	q.mu.Unlock()
	q.log.Debug("folded delivered events into the done log", "events", len(batch))
}

// appendDone appends lines (n of them) to the done log, durably; a failed
// append is cut back, so that the log never keeps a torn line.
func (q *Queue) appendDone(lines []byte, n int) error {
	q.doneMu.Lock()
	defer q.doneMu.Unlock()
	return q.appendDoneLocked(lines, n)
}

// appendDoneLocked is appendDone; the caller holds doneMu.
func (q *Queue) appendDoneLocked(lines []byte, n int) error {
	d := &q.done
	if d.f == nil {
		return errors.New("the done log is not open")
	}
	if err := q.failAt(safeio.StepWrite, q.doneLogPath()); err != nil {
		return err
	}
	_, err := d.f.Write(lines)
	if err == nil {
		err = q.failAt(safeio.StepSync, q.doneLogPath())
	}
	if err == nil {
		err = unix.Fdatasync(int(d.f.Fd()))
	}
	if err != nil {
		return safeio.CutBack(d.f, d.size, err)
	}
	d.size += int64(len(lines))
	d.lines += n
	return nil
}

// failAt injects a failure (Options.Fail; tests only).
func (q *Queue) failAt(step safeio.Step, path string) error {
	if q.opt.Fail == nil {
		return nil
	}
	return q.opt.Fail(step, path)
}

// forgetDone makes the done log forget the folded deliveries gc collected
// (ids), so that a restart does not bring them back: the log is compacted
// when at least half of its lines are of deliveries no longer kept, and a
// "forget" line naming them is appended otherwise (or if compacting
// fails). Called by gc, under fileMu's write lock: no fold runs
// meanwhile. If neither works the deliveries come back at the next start,
// done, for another retention: nothing is delivered twice.
func (q *Queue) forgetDone(ids []string) {
	q.doneMu.Lock()
	defer q.doneMu.Unlock()
	d := &q.done
	if d.f == nil {
		return
	}
	q.mu.Lock()
	live := map[string]bool{}
	events := 0
	for _, es := range q.byEvent {
		kept := false
		for _, e := range es {
			if e.folded {
				live[e.id] = true
				kept = true
			}
		}
		if kept {
			events++
		}
	}
	q.mu.Unlock()
	if d.lines >= 2*events+compactSlack {
		err := q.compactDone(live)
		if err == nil {
			return
		}
		q.log.Warn("cannot compact the done log; recording the collected deliveries instead", "err", err)
	}
	slices.Sort(ids)
	b, err := json.Marshal(&doneLine{Forget: ids})
	if err == nil {
		err = q.appendDoneLocked(append(b, '\n'), 1)
	}
	if err != nil {
		q.log.Warn("cannot record collected deliveries in the done log; they come back, done, after a restart", "deliveries", len(ids), "err", err)
	}
}

// compactDone rewrites the done log with the last line of each event that
// still has folded deliveries in memory (live), keeping those deliveries
// alone. Caller holds doneMu.
func (q *Queue) compactDone(live map[string]bool) error {
	d := &q.done
	n, size, err := rewriteDoneLog(q.doneLogPath(), d.size, live)
	if err != nil {
		return err
	}
	f, err := q.openDoneLog()
	if err != nil {
		// The new log is in place and durable; folding waits for the
		// next start.
		q.log.Error("cannot reopen the done log after compacting it; delivered events keep their files until collected", "err", err)
		_ = d.f.Close()
		*d = doneLog{}
		return nil
	}
	_ = d.f.Close()
	*d = doneLog{f: f, size: size, lines: n}
	q.log.Debug("compacted the done log", "lines", n, "bytes", size)
	return nil
}

// compactSlack keeps a small log from being rewritten at every gc.
const compactSlack = 256

// rewriteDoneLog replaces the log at path (its first size bytes) with the
// last line of each event that has deliveries in live, holding those
// deliveries alone, atomically and durably.
func rewriteDoneLog(path string, size int64, live map[string]bool) (lines int, newSize int64, err error) {
	src, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = src.Close() }()
	type span struct{ off, n int64 }
	last := map[string]span{}
	var order []string
	if _, err := eachLine(io.NewSectionReader(src, 0, size), func(off int64, line []byte) error {
		var dl doneLine
		if json.Unmarshal(line, &dl) == nil && slices.ContainsFunc(dl.Records, func(r record) bool {
			return live[deliveryID(r.EventID, r.Target)]
		}) {
			if _, seen := last[dl.EventID]; !seen {
				order = append(order, dl.EventID)
			}
			last[dl.EventID] = span{off, int64(len(line))}
		}
		return nil
	}); err != nil {
		return 0, 0, err
	}
	slices.SortFunc(order, func(a, b string) int { return cmp.Compare(last[a].off, last[b].off) })
	t, err := safeio.Create(path, fileMode)
	if err != nil {
		return 0, 0, err
	}
	defer t.Abort()
	w := bufio.NewWriterSize(t, 64<<10)
	for _, id := range order {
		s := last[id]
		line := make([]byte, s.n)
		if _, err := src.ReadAt(line, s.off); err != nil {
			return 0, 0, err
		}
		var dl doneLine
		if err := json.Unmarshal(line, &dl); err != nil {
			return 0, 0, err
		}
		n := len(dl.Records)
		dl.Records = slices.DeleteFunc(dl.Records, func(r record) bool { return !live[deliveryID(r.EventID, r.Target)] })
		if len(dl.Records) < n {
			// Some of the event's deliveries were collected: the line
			// keeps the others only.
			b, err := json.Marshal(&dl)
			if err != nil {
				return 0, 0, err
			}
			line = append(b, '\n')
		}
		if _, err := w.Write(line); err != nil {
			return 0, 0, err
		}
		newSize += int64(len(line))
	}
	if err := w.Flush(); err != nil {
		return 0, 0, err
	}
	if err := t.Commit(); err != nil {
		return 0, 0, err
	}
	return len(order), newSize, nil
}

// doneEvent finds the event of a folded delivery in the done log at path
// (its last line for the event), for `herald queue show`.
func doneEvent(path, evID string) (*event.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var found json.RawMessage
	if _, err := eachLine(f, func(_ int64, line []byte) error {
		var dl doneLine
		if bytes.Contains(line, []byte(evID)) && json.Unmarshal(line, &dl) == nil && dl.EventID == evID && dl.Event != nil {
			found = dl.Event
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("event %s: %w", evID, fs.ErrNotExist)
	}
	ev := new(event.Event)
	if err := json.Unmarshal(found, ev); err != nil {
		return nil, fmt.Errorf("event %s in %s: %w", evID, path, err)
	}
	return ev, nil
}

// readDoneLog returns the folded deliveries of the done log in dir, for
// the read-only view (nothing when there is none).
func readDoneLog(dir string) (map[string]*record, error) {
	f, err := os.Open(filepath.Join(dir, doneLogName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	_, _, _, recs, err := scanDoneLog(f, func(string, ...any) {})
	return recs, err
}
