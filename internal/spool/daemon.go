package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/safeio"
)

// staleAfter is how long an unlocked temporary file must have been left
// untouched before recovery removes it. A writer takes its lock right after
// creating the file and drops it only between its close and its rename:
// within those microseconds an unlocked file can still belong to a live
// writer, and removing it would fail that writer's submission.
const staleAfter = 5 * time.Second

// Spool is the daemon's side of the spool: it owns the directories, writes
// entries for its own ingest paths, and reads, removes and quarantines the
// entries of all submitters.
type Spool struct {
	root       string // STATE/spool
	maildrop   string
	incoming   string
	quarantine string
	uid        int // the daemon's uid: the owner of incoming/ entries
	log        *slog.Logger
	// j, when set (OpenJournal), takes the daemon's own writes and
	// removals (journal.go).
	j *safeio.Journal

	mu   sync.Mutex
	subs map[chan struct{}]struct{} // Watch channels, signalled by Submit

	// The entries this daemon's Submit committed since the ingest last
	// looked (fresh.go).
	fresh freshList

	// The conversion attempts' log (attempts.go), opened on first use.
	attemptsOnce sync.Once
	attempts     *attempts

	// Disk limits and the uids' use (disk.go), under mu; what was last
	// published, under pubMu, which serialises writing the limits file.
	limits    Limits
	usage     map[int]int64
	pubMu     sync.Mutex
	published []byte
}

// Open opens the spool under stateDir, creating missing directories with
// their intended modes (which is what a development run without a package
// install relies on), and refuses modes that would let other users forge or
// delete entries.
func Open(stateDir string, log *slog.Logger) (*Spool, error) {
	return OpenDir(filepath.Join(stateDir, spoolDirName), log)
}

// OpenDir is Open for a spool at root (herald.cfg's spool-dir) instead of
// STATE/spool.
func OpenDir(root string, log *slog.Logger) (*Spool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Spool{
		root:       root,
		maildrop:   filepath.Join(root, maildropDirName),
		incoming:   filepath.Join(root, incomingDirName),
		quarantine: filepath.Join(root, quarantineDirName),
		uid:        os.Geteuid(),
		log:        log,
		subs:       make(map[chan struct{}]struct{}),
	}
	for _, d := range []struct {
		path string
		perm os.FileMode
	}{
		{filepath.Dir(root), 0o755},
		{root, 0o755},
		{s.maildrop, os.ModeSticky | 0o730},
		{s.incoming, 0o700},
		{s.quarantine, 0o700},
	} {
		if err := ensureDir(d.path, d.perm); err != nil {
			return nil, &spoolError{op: "open", err: err}
		}
	}
	if err := s.checkModes(); err != nil {
		return nil, err
	}
	return s, nil
}

// ensureDir creates dir with exactly perm (no umask) if it is missing, and
// makes its creation durable.
func ensureDir(dir string, perm os.FileMode) error {
	return safeio.Mkdir(dir, perm)
}

// checkModes refuses directory modes that break the permission model (see
// the package comment) and warns about merely loose ones.
func (s *Spool) checkModes() error {
	st, err := os.Stat(s.maildrop)
	if err != nil {
		return &spoolError{op: "open", err: err}
	}
	m := st.Mode()
	if m&0o022 != 0 && m&os.ModeSticky == 0 {
		return fmt.Errorf("spool: %s is mode %v: writable by group or others without the sticky bit, so submitters could delete each other's mail (want 1730)", s.maildrop, m)
	}
	if m&0o007 != 0 || m&0o040 != 0 {
		s.log.Warn("spool: maildrop is listable or reachable by others (want mode 1730)", "dir", s.maildrop, "mode", m.String())
	}
	if owner := ownerOf(st); s.uid != 0 && owner != s.uid {
		return fmt.Errorf("spool: %s is owned by uid %d but the daemon runs as uid %d: it could not remove submitted entries", s.maildrop, owner, s.uid)
	}
	for _, dir := range []string{s.incoming, s.quarantine} {
		st, err := os.Stat(dir)
		if err != nil {
			return &spoolError{op: "open", err: err}
		}
		if st.Mode()&0o022 != 0 {
			return fmt.Errorf("spool: %s is mode %v: writable by group or others, who could forge entries (want 0700)", dir, st.Mode())
		}
		if st.Mode()&0o055 != 0 {
			s.log.Warn("spool: directory is readable by others (want mode 0700)", "dir", dir, "mode", st.Mode().String())
		}
	}
	return nil
}

// Dir returns the spool directory (STATE/spool).
func (s *Spool) Dir() string { return s.root }

// Submit writes one entry durably into incoming/ (the daemon's own ingest
// paths) and returns its ID; see Drop.Submit for the contract.
func (s *Spool) Submit(env Envelope, body io.Reader, maxSize int64) (string, error) {
	if err := s.SpaceOK(); err != nil {
		_, _ = io.Copy(io.Discard, body) // the contract: read to the end
		return "", err
	}
	var id string
	var err error
	if s.j != nil {
		id, err = s.submitJournaled(env, body, maxSize)
	} else {
		id, err = writeEntry(s.incoming, 0o600, env, body, maxSize)
		if err == nil {
			s.fresh.missed() // not kept in memory: the next look lists
		}
	}
	if err == nil {
		s.signal()
	}
	return id, err
}

// spoolDir is one of the two directories that hold entries.
type spoolDir struct {
	path  string
	name  string
	owner bool // Env.UID is the file owner (maildrop) rather than the daemon
}

func (s *Spool) entryDirs() []spoolDir {
	return []spoolDir{
		{s.maildrop, maildropDirName, true},
		{s.incoming, incomingDirName, false},
	}
}

// Recover runs at start-up: it removes the partial files of writers that
// are gone and quarantines committed entries that cannot be parsed and files
// that do not belong in the spool. It keeps the partial files of live
// writers. Every removal and quarantine is logged.
func (s *Spool) Recover() (removed, quarantined int, err error) {
	live := map[string]bool{}
	defer func() {
		if err == nil {
			s.pruneAttempts(live)
		}
	}()
	for _, d := range s.entryDirs() {
		names, err := readNames(d.path)
		if err != nil {
			return removed, quarantined, &spoolError{op: "recover", err: err}
		}
		for _, name := range names {
			p := filepath.Join(d.path, name)
			switch {
			case d.owner && name == kickName:
				// A pending kick, consumed by Kicked.
			case strings.HasPrefix(name, safeio.TempPrefix):
				if s.recoverTemp(p) {
					removed++
				}
			case ValidID(name):
				f, _, err := openEntry(p, name, d.owner, s.uid)
				var fe *formatError
				switch {
				case err == nil:
					live[name] = true
					if cerr := f.Close(); cerr != nil {
						s.log.Warn("spool: close entry", "file", p, "err", cerr)
					}
				case errors.As(err, &fe):
					if qerr := s.quarantinePath(p, d.name, name, err); qerr != nil {
						return removed, quarantined, qerr
					}
					quarantined++
				case errors.Is(err, fs.ErrNotExist):
				default:
					live[name] = true
					s.log.Warn("spool: cannot read entry; leaving it in place", "file", p, "err", err)
				}
			default:
				if qerr := s.quarantinePath(p, d.name, name, errors.New("not a spool entry")); qerr != nil {
					return removed, quarantined, qerr
				}
				quarantined++
			}
		}
	}
	return removed, quarantined, nil
}

// recoverTemp removes the partial file at p if its writer is gone, and
// reports whether it did.
func (s *Spool) recoverTemp(p string) bool {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false // committed or aborted meanwhile
		case errors.Is(err, fs.ErrPermission):
			// A submitter's file still in its first mode (0600, before
			// safeio's chmod): either its writer is in the middle of
			// creating it or it died right there. Only its age tells.
			st, serr := os.Lstat(p)
			if serr != nil || time.Since(st.ModTime()) < staleAfter {
				return false
			}
		case errors.Is(err, syscall.ELOOP):
			// A symbolic link is never a partial entry.
		default:
			s.log.Warn("spool: cannot inspect partial entry; leaving it in place", "file", p, "err", err)
			return false
		}
		return s.removePartial(p, -1)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil {
			s.log.Warn("spool: close partial entry", "file", p, "err", cerr)
		}
	}()
	var lerr error
	if rc, err := f.SyscallConn(); err != nil {
		lerr = err
	} else if err := rc.Control(func(fd uintptr) { lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		lerr = err
	}
	if errors.Is(lerr, unix.EWOULDBLOCK) {
		s.log.Info("spool: kept partial entry of a live writer", "file", p)
		return false
	}
	if lerr != nil {
		s.log.Warn("spool: cannot lock partial entry; leaving it in place", "file", p, "err", lerr)
		return false
	}
	st, err := f.Stat()
	if err != nil {
		s.log.Warn("spool: cannot stat partial entry; leaving it in place", "file", p, "err", err)
		return false
	}
	if time.Since(st.ModTime()) < staleAfter {
		return false
	}
	return s.removePartial(p, st.Size())
}

func (s *Spool) removePartial(p string, size int64) bool {
	if err := os.Remove(p); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: cannot remove partial entry", "file", p, "err", err)
		}
		return false
	}
	// Never acknowledged, so nothing is lost: its writer reported a failure
	// (or died before it could report anything).
	s.log.Warn("spool: removed partial entry of a writer that is gone", "file", p, "size", size)
	return true
}

// Pending returns the committed entries of both directories, oldest first.
// Entries that cannot be parsed are quarantined (with a log line) and left
// out; entries that cannot be read right now are logged and left out.
func (s *Spool) Pending() ([]Entry, error) { return s.PendingExcept(nil) }

// PendingExcept is Pending without the entries whose ID skip reports
// (entries the caller already has): their files are not even opened, so
// listing again while a long backlog is processed stays cheap.
func (s *Spool) PendingExcept(skip func(id string) bool) ([]Entry, error) {
	var all []Entry
	for _, d := range s.entryDirs() {
		// The entries the journal holds are not files yet (journal.go):
		// taken from memory, and before the listing, so that one written
		// out meanwhile is seen either way.
		held := s.heldIn(d.path)
		for name, data := range held {
			if !ValidID(name) || skip != nil && skip(name) {
				continue
			}
			e, err := s.heldEntry(d.path, name, data)
			if err != nil {
				s.log.Error("spool: an entry the journal holds cannot be read; skipping it", "id", name, "err", err)
				continue
			}
			all = append(all, e)
		}
		names, err := readNames(d.path)
		if err != nil {
			return nil, &spoolError{op: "list", err: err}
		}
		for _, name := range names {
			if _, ok := held[name]; ok || !ValidID(name) || skip != nil && skip(name) {
				continue
			}
			p := filepath.Join(d.path, name)
			f, e, err := openEntry(p, name, d.owner, s.uid)
			var fe *formatError
			switch {
			case err == nil:
				if cerr := f.Close(); cerr != nil {
					s.log.Warn("spool: close entry", "id", name, "err", cerr)
				}
				all = append(all, e)
			case errors.As(err, &fe):
				if qerr := s.quarantinePath(p, d.name, name, err); qerr != nil {
					s.log.Error("spool: cannot quarantine corrupt entry", "id", name, "err", qerr)
				}
			case errors.Is(err, fs.ErrNotExist):
				// Removed meanwhile.
			default:
				s.log.Warn("spool: cannot read entry; skipping it for now", "id", name, "err", err)
			}
		}
	}
	sortEntries(all)
	return all, nil
}

// Read opens the raw message of e (the bytes after the envelope).
func (s *Spool) Read(e Entry) (io.ReadCloser, error) {
	if e.data != nil {
		return io.NopCloser(bytes.NewReader(e.data[e.off:])), nil
	}
	f, err := os.OpenFile(e.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(e.off, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// ReadAll returns the raw message of e.
func (s *Spool) ReadAll(e Entry) ([]byte, error) {
	if e.data != nil {
		return bytes.Clone(e.data[e.off:]), nil
	}
	r, err := s.Read(e)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if e.Size > 0 && e.Size < 1<<31 {
		buf.Grow(int(e.Size) + bytes.MinRead)
	}
	_, rerr := buf.ReadFrom(r)
	cerr := r.Close()
	if rerr != nil {
		return nil, rerr
	}
	if cerr != nil {
		return nil, cerr
	}
	return buf.Bytes(), nil
}

// Remove deletes e durably; call it only once the event made from e is
// durably queued.
func (s *Spool) Remove(e Entry) error {
	if s.j != nil {
		err := s.removeJournaled(e.path)
		if err == nil {
			s.fresh.gone(e.ID)
		}
		return err
	}
	if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return safeio.SyncDir(filepath.Dir(e.path))
}

// Quarantine moves e aside into quarantine/ and logs why; it is never
// deleted.
func (s *Spool) Quarantine(e Entry, reason error) error {
	if err := s.writeOut(); err != nil {
		return err
	}
	if err := s.quarantinePath(e.path, filepath.Base(filepath.Dir(e.path)), e.ID, reason); err != nil {
		return err
	}
	s.forget(e.path)
	s.fresh.gone(e.ID)
	return nil
}

// quarantinePath moves the file p (name in the directory dirName) into
// quarantine/ as DIRNAME-NAME, durably, with a log line.
func (s *Spool) quarantinePath(p, dirName, name string, reason error) error {
	dest, err := safeio.MoveAside(p, s.quarantine, dirName+"-"+strings.TrimPrefix(name, "."), 0o700)
	if err != nil {
		return &spoolError{op: "quarantine", err: err}
	}
	// Its age in quarantine starts now (PruneQuarantine).
	now := time.Now()
	if err := os.Chtimes(dest, now, now); err != nil {
		s.log.Warn("spool: cannot date quarantined entry", "file", dest, "err", err)
	}
	s.log.Warn("spool: entry quarantined", "id", name, "dir", dirName, "to", dest, "reason", reason)
	return nil
}

// Kicked consumes a pending kick marker (written by Drop.Kick) and reports
// whether there was one.
func (s *Spool) Kicked() bool {
	err := os.Remove(filepath.Join(s.maildrop, kickName))
	switch {
	case err == nil:
		return true
	case errors.Is(err, fs.ErrNotExist):
		return false
	default:
		// The marker is there but stays: report the kick anyway, so a
		// queue run happens; the log says why it repeats.
		s.log.Warn("spool: cannot remove kick marker", "err", err)
		return true
	}
}
