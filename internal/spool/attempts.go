package spool

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// attemptsDirName holds one small file per entry whose processing has
// begun: the number of times it began. An entry that kills the daemon
// while it is processed (out of memory, a crash in a library) would
// otherwise be picked up again at every start, forever; with the count the
// daemon can set it aside after a few tries.
//
// The counts are written without fsync on purpose. They guard against a
// crashing *process*, whose written data the kernel keeps; after a power
// loss a count may be lower than it was, which costs one more try and
// nothing else. An fsync here would cost every mail a disk flush.
const attemptsDirName = "attempts"

// BeginAttempt records that processing of e begins and returns how many
// times it has begun, this time included.
func (s *Spool) BeginAttempt(e Entry) (int, error) {
	dir := filepath.Join(s.root, attemptsDirName)
	p := filepath.Join(dir, e.ID)
	n := 0
	if b, err := os.ReadFile(p); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	n++
	err := os.WriteFile(p, []byte(strconv.Itoa(n)+"\n"), 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(dir, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			err = os.WriteFile(p, []byte(strconv.Itoa(n)+"\n"), 0o600)
		}
	}
	return n, err
}

// EndAttempts forgets the count of e, once e has left the spool.
func (s *Spool) EndAttempts(e Entry) {
	err := os.Remove(filepath.Join(s.root, attemptsDirName, e.ID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("spool: remove attempt count", "id", e.ID, "err", err)
	}
}

// pruneAttempts removes the counts of entries that are no longer in the
// spool (left behind by a crash between removing an entry and its count).
func (s *Spool) pruneAttempts(live map[string]bool) {
	dir := filepath.Join(s.root, attemptsDirName)
	names, err := readNames(dir)
	if err != nil {
		return
	}
	for _, name := range names {
		if !live[name] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("spool: remove stale attempt count", "id", name, "err", err)
			}
		}
	}
}
