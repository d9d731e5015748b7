package spool

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"sync"

	"herald/internal/safeio"
)

// The daemon's own writes (Submit into incoming/, Remove, and the removal
// that follows a quarantine) can go through a journal in STATE/spool/journal
// (safeio.Journal, docs/durability.md): concurrent SMTP sessions and pick-ups
// then share one fdatasync instead of paying a file and a directory fsync
// each. An entry up to the journal's MaxJournaled is buffered in memory and
// written as one journaled op, held by the journal until its segment is
// checkpointed (so an entry picked up at once never becomes a file; a
// listing takes the held ones from the journal); a
// bigger one spills to a temporary file written the direct way, whose
// installation under its ID is journaled. The
// submitters' maildrop writes (Drop, another process) stay direct: the
// journal is the daemon's alone.

// OpenJournal opens the spool's journal, replaying what a crash left, and
// routes the daemon's writes through it from now on. Call it before Recover
// (which must see the replayed entries) and before the first Submit; Close
// stops it.
func (s *Spool) OpenJournal(opt safeio.JournalOptions) error {
	if s.j != nil {
		return errors.New("spool: journal already open")
	}
	if opt.Logger == nil {
		opt.Logger = s.log
	}
	j, err := safeio.OpenJournal(s.root, opt)
	if err != nil {
		return &spoolError{op: "open journal", err: err}
	}
	s.j = j
	return nil
}

// Close closes the attempt log and stops the spool's journal, if it has
// one, making every write durable in the directories. Later submissions fail (temporarily).
func (s *Spool) Close() error {
	if a := s.attempts; a != nil {
		a.mu.Lock()
		if a.f != nil {
			_ = a.f.Close()
			a.f = nil
		}
		a.mu.Unlock()
	}
	if s.j == nil {
		return nil
	}
	return s.j.Close()
}

// maxJournaled is the largest entry the journal takes whole.
func (s *Spool) maxJournaled() int {
	return safeio.DefaultMaxJournaled
}

// entryBufs recycles the buffers submissions are read into (up to the
// journal's MaxJournaled and a byte): most mail is a few KiB, and a
// buffer allocated per mail at its largest useful size was most of what
// the garbage collector had to do under a stream of SMTP sessions.
var entryBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// submitJournaled is writeEntry through the journal.
func (s *Spool) submitJournaled(env Envelope, body io.Reader, maxSize int64) (string, error) {
	id, head, sizeAt, err := newEntry(&env)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(s.incoming, id)

	// Read up to one byte more than the journal takes whole: if the body
	// ends before, it is one op; otherwise it spills.
	lr := &limitReader{r: body, max: maxSize}
	limit := max(int64(s.maxJournaled()-len(head)), -1)
	buf := entryBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer entryBufs.Put(buf)
	buf.Write(head)
	n, err := buf.ReadFrom(io.LimitReader(lr, limit+1))
	if err != nil {
		return "", bodyOrSpoolError(err)
	}
	if n <= limit {
		// The entry keeps exactly its bytes (held by the journal, on the
		// fresh list), not the buffer it was read into.
		b := bytes.Clone(buf.Bytes())
		copy(b[sizeAt:], bodySize(n))
		s.fresh.expect(id)
		// Held (safeio.Op.Held): most entries are picked up from memory
		// (fresh.go) and removed within milliseconds, so the file need
		// never exist; the listings take what the journal holds from it
		// (PendingExcept), and a checkpoint writes out the rest. A
		// read-only spool still refuses it now: the journal asks whether
		// incoming/ takes a write before holding one.
		if err := s.j.Apply(safeio.WriteOp(dest, b, 0o600).Held()); err != nil {
			// Not committed, or committed but not applied: what the journal
			// does later, the listing finds.
			s.fresh.gone(id)
			s.fresh.missed()
			return "", &spoolError{op: "commit entry", err: err}
		}
		s.keepFresh(id, dest, env, int64(len(head)), b)
		return id, nil
	}
	// Too big for the journal: the direct way, installed through it.
	t, err := safeio.Create(dest, 0o600)
	if err != nil {
		return "", &spoolError{op: "create entry", err: err}
	}
	defer t.Abort()
	if err := lockFile(t.File); err != nil {
		return "", &spoolError{op: "lock entry", err: err}
	}
	if _, err := t.Write(buf.Bytes()); err != nil {
		return "", &spoolError{op: "write entry", err: err}
	}
	rest, err := t.ReadFrom(lr)
	if err != nil {
		return "", bodyOrSpoolError(err)
	}
	if _, err := t.WriteAt(bodySize(n+rest), sizeAt); err != nil {
		return "", &spoolError{op: "write entry", err: err}
	}
	if err := s.j.Commit(t); err != nil {
		return "", &spoolError{op: "commit entry", err: err}
	}
	s.fresh.missed() // too big to keep in memory: the next look lists
	return id, nil
}

// bodyOrSpoolError keeps the submitter's errors (too large, unreadable
// input) apart from the spool's own.
func bodyOrSpoolError(err error) error {
	var be *BodyError
	if errors.Is(err, ErrTooLarge) || errors.As(err, &be) {
		return err
	}
	return &spoolError{op: "write entry", err: err}
}

// removeJournaled removes the entry file at p through the journal.
func (s *Spool) removeJournaled(p string) error {
	if err := s.j.Remove(p); err != nil {
		return &spoolError{op: "remove entry", err: err}
	}
	return nil
}

// heldIn returns the entries the journal holds in dir, by name.
func (s *Spool) heldIn(dir string) map[string][]byte {
	if s.j == nil {
		return nil
	}
	return s.j.HeldIn(dir)
}

// heldEntry is openEntry for an entry the journal holds: data is the
// whole file, which only the daemon writes (incoming/).
func (s *Spool) heldEntry(dir, id string, data []byte) (Entry, error) {
	env, off, bodySize, err := readHeader(bytes.NewReader(data))
	if err != nil {
		return Entry{}, err
	}
	if err := checkBodySize(int64(len(data))-off, bodySize); err != nil {
		return Entry{}, err
	}
	env.UID = s.uid
	return Entry{ID: id, Env: env, Size: int64(len(data)) - off, path: filepath.Join(dir, id), off: off, data: data}, nil
}

// writeOut makes the directories show every entry the journal holds, for
// a listing or a move.
func (s *Spool) writeOut() error {
	if s.j == nil {
		return nil
	}
	if err := s.j.WriteOut(); err != nil {
		return &spoolError{op: "write out held entries", err: err}
	}
	return nil
}

// forget makes sure no journaled write brings back the entry file at p,
// which was just moved aside: the path's last op becomes a removal.
func (s *Spool) forget(p string) {
	if s.j == nil {
		return
	}
	if err := s.j.Remove(p); err != nil {
		// After a crash before the next checkpoint the entry may come back
		// from the journal and be processed (and set aside) again.
		s.log.Warn("spool: cannot journal the removal of a quarantined entry", "file", p, "err", err)
	}
}
