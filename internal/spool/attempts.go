package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// attemptsLogName is an append-only log of the conversions that began and
// ended: a line "B ID" when the daemon begins converting an entry, "E ID"
// when that conversion ends (either way). An entry that kills the daemon
// while it is converted (out of memory, a crash in a library) would
// otherwise be picked up again at every start, forever; counting the
// begins without an end lets the daemon set it aside after a few tries.
//
// The log is written without fsync on purpose. It guards against a
// crashing *process*, whose written data the kernel keeps; after a power
// loss a count may be lower than it was, which costs one more try and
// nothing else. An fsync here would cost every mail a disk flush. One log
// instead of a file per entry spares every mail an inode's creation and
// removal (docs/durability.md §5).
const attemptsLogName = "attempts.log"

// oldAttemptsDirName held one count file per entry in earlier builds.
const oldAttemptsDirName = "attempts"

// compactAt is the size past which the log is rewritten with only the
// counts still open.
const compactAt = 1 << 20

// attempts is the in-memory view of the log: begins without an end, per
// entry ID.
type attempts struct {
	mu     sync.Mutex
	path   string
	f      *os.File // opened on first use
	size   int64
	open   map[string]int
	loaded bool
}

// load reads the log once: the counts of conversions that began and did
// not end, in this process or in one that died.
func (a *attempts) load() error {
	if a.loaded {
		return nil
	}
	a.open = map[string]int{}
	b, err := os.ReadFile(a.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		op, id, ok := strings.Cut(sc.Text(), " ")
		if !ok || !ValidID(id) {
			continue // a torn last line, or damage: it costs one count
		}
		switch op {
		case "B":
			a.open[id]++
		case "E":
			delete(a.open, id)
		}
	}
	a.loaded = true
	return nil
}

// appendLine appends one line, opening the log first if needed.
func (a *attempts) appendLine(line string) error {
	if a.f == nil {
		f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		a.f, a.size = f, st.Size()
		if a.size > 0 {
			// A line torn by a crash gets its end, so this one starts
			// on a line of its own.
			last := make([]byte, 1)
			if r, err := os.Open(a.path); err == nil {
				_, _ = r.ReadAt(last, a.size-1)
				_ = r.Close()
			}
			if last[0] != '\n' {
				line = "\n" + line
			}
		}
	}
	n, err := a.f.WriteString(line)
	a.size += int64(n)
	return err
}

// compact rewrites the log with the open counts only (temp file and
// rename; no fsync, as for every line of it).
func (a *attempts) compact() error {
	var b strings.Builder
	for id, n := range a.open {
		for range n {
			b.WriteString("B " + id + "\n")
		}
	}
	tmp := a.path + ".new"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, a.path); err != nil {
		return err
	}
	if a.f != nil {
		_ = a.f.Close()
		a.f = nil
	}
	a.size = int64(b.Len())
	return nil
}

func (s *Spool) attemptLog() *attempts {
	s.attemptsOnce.Do(func() {
		s.attempts = &attempts{path: filepath.Join(s.root, attemptsLogName)}
	})
	return s.attempts
}

// BeginAttempt records that the conversion of e begins and returns how
// many times it has begun without ending, this time included.
func (s *Spool) BeginAttempt(e Entry) (int, error) {
	a := s.attemptLog()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return 1, fmt.Errorf("read %s: %w", a.path, err)
	}
	a.open[e.ID]++
	n := a.open[e.ID]
	if err := a.appendLine("B " + e.ID + "\n"); err != nil {
		return n, fmt.Errorf("append to %s: %w", a.path, err)
	}
	return n, nil
}

// EndAttempts forgets the count of e: its conversion ended.
func (s *Spool) EndAttempts(e Entry) {
	a := s.attemptLog()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		s.log.Warn("spool: read the attempt log", "err", err)
		return
	}
	delete(a.open, e.ID)
	err := a.appendLine("E " + e.ID + "\n")
	if err == nil && a.size > compactAt {
		err = a.compact()
	}
	if err != nil {
		s.log.Warn("spool: record the end of an attempt", "id", e.ID, "err", err)
	}
}

// pruneAttempts forgets the counts of entries that are no longer in the
// spool (left behind by a crash between removing an entry and ending its
// count), rewrites the log with what is left, and removes the per-entry
// count files of earlier builds.
func (s *Spool) pruneAttempts(live map[string]bool) {
	if err := os.RemoveAll(filepath.Join(s.root, oldAttemptsDirName)); err != nil {
		s.log.Warn("spool: remove the old attempt counts", "err", err)
	}
	a := s.attemptLog()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		s.log.Warn("spool: read the attempt log", "err", err)
		return
	}
	for id := range a.open {
		if !live[id] {
			delete(a.open, id)
		}
	}
	if err := a.compact(); err != nil {
		s.log.Warn("spool: rewrite the attempt log", "err", err)
	}
}
