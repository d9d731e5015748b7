// Package safeio holds herald's one way of writing a durable file: a
// temporary file in the target's directory, written, fsynced, renamed into
// place, and the directory fsynced. Nothing else in herald writes state that
// must survive a crash. Failure points can be injected so tests can prove
// every crash path.
package safeio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Step names a point in a durable write where a test can inject a failure.
type Step string

// The steps of WriteFile and of a Temp's Commit, in order.
const (
	StepCreate  Step = "create"
	StepWrite   Step = "write"
	StepSync    Step = "sync"
	StepClose   Step = "close"
	StepRename  Step = "rename"
	StepSyncDir Step = "syncdir"
)

// FailHook, when set, is called before each step; a non-nil error aborts the
// write at that step exactly as a real failure would. Tests only.
var FailHook func(step Step, path string) error

func hook(step Step, path string) error {
	if FailHook == nil {
		return nil
	}
	if err := FailHook(step, path); err != nil {
		return fmt.Errorf("%s %s: %w", step, path, err)
	}
	return nil
}

// SyncDir fsyncs a directory so that a rename or create in it that
// happened before the call is durable when it returns nil.
//
// Concurrent calls for one directory share fsyncs (group commit): a call
// waits for the next fsync that starts after it was made, and one fsync
// serves every caller waiting at that moment. Under load (many SMTP
// sessions, parallel ingest) that turns N directory fsyncs into about two.
func SyncDir(dir string) error {
	if err := hook(StepSyncDir, dir); err != nil {
		return err
	}
	return dirSyncerFor(dir).sync()
}

// dirFsync is the fsync a dirSyncer runs; tests replace it.
var dirFsync = fsyncDir

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("fsync %s: %w", dir, serr)
	}
	return cerr
}

// dirSyncer coalesces the fsyncs of one directory. started and done count
// fsyncs; a caller needs fsync number started+1 (one that begins after its
// call) to complete. failed is the number of the last fsync that failed.
type dirSyncer struct {
	dir     string
	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	started uint64
	done    uint64
	failed  uint64
	lastErr error
}

var (
	syncersMu sync.Mutex
	syncers   = map[string]*dirSyncer{}
)

func dirSyncerFor(dir string) *dirSyncer {
	dir = filepath.Clean(dir)
	syncersMu.Lock()
	defer syncersMu.Unlock()
	s := syncers[dir]
	if s == nil {
		s = &dirSyncer{dir: dir}
		s.cond = sync.NewCond(&s.mu)
		syncers[dir] = s
	}
	return s
}

func (s *dirSyncer) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// An fsync already running may have started before our rename: we need
	// the next one.
	want := s.started + 1
	for s.done < want {
		if s.running {
			s.cond.Wait()
			continue
		}
		s.running = true
		s.started++
		n := s.started
		s.mu.Unlock()
		err := dirFsync(s.dir)
		s.mu.Lock()
		s.running = false
		s.done = n
		if err != nil {
			s.failed, s.lastErr = n, err
		}
		s.cond.Broadcast()
	}
	// Conservative: a failure of our fsync or of any later one is reported
	// (the caller then treats the write as not durable).
	if s.failed >= want {
		return s.lastErr
	}
	return nil
}

// Temp is a file being written that becomes durable at Commit. Until then it
// lives under a name starting with TempPrefix in the destination directory.
type Temp struct {
	*os.File
	dest string
	done bool
}

// TempPrefix starts the name of every uncommitted file. Readers skip such
// names; recovery removes them once their writer is gone.
const TempPrefix = ".tmp-"

// Create starts a durable write of dest. Write to the returned Temp, then
// Commit it; Abort (safe to defer) removes it if it was not committed.
func Create(dest string, perm os.FileMode) (*Temp, error) {
	if err := hook(StepCreate, dest); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(dest), TempPrefix+filepath.Base(dest)+"-")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, err
	}
	return &Temp{File: f, dest: dest}, nil
}

// Write writes to the temporary file; the write step can fail by injection.
func (t *Temp) Write(p []byte) (int, error) {
	if err := hook(StepWrite, t.dest); err != nil {
		return 0, err
	}
	return t.File.Write(p)
}

// ReadFrom copies r into the temporary file.
func (t *Temp) ReadFrom(r io.Reader) (int64, error) {
	if err := hook(StepWrite, t.dest); err != nil {
		return 0, err
	}
	return io.Copy(t.File, r)
}

// Commit fsyncs the file, renames it to its destination and fsyncs the
// directory. Only when Commit returns nil is the file durable.
func (t *Temp) Commit() error {
	if t.done {
		return errors.New("safeio: commit after commit or abort")
	}
	t.done = true
	renamed := false
	err := func() error {
		if err := hook(StepSync, t.dest); err != nil {
			return err
		}
		if err := t.File.Sync(); err != nil {
			return err
		}
		if err := hook(StepClose, t.dest); err != nil {
			return err
		}
		if err := t.File.Close(); err != nil {
			return err
		}
		if err := hook(StepRename, t.dest); err != nil {
			return err
		}
		if err := os.Rename(t.File.Name(), t.dest); err != nil {
			return err
		}
		renamed = true
		return SyncDir(filepath.Dir(t.dest))
	}()
	if err != nil && !renamed {
		_ = t.File.Close()
		_ = os.Remove(t.File.Name())
	}
	// If only the directory sync failed, dest holds the complete new content
	// but is not known durable: the error says so, and a caller that must not
	// leave unacknowledged data behind (the spool) removes dest itself.
	return err
}

// Abort removes the temporary file unless it was committed.
func (t *Temp) Abort() {
	if t.done {
		return
	}
	t.done = true
	_ = t.File.Close()
	_ = os.Remove(t.File.Name())
}

// WriteFile writes data to path durably and atomically: readers see the old
// content or the new, never a part.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	t, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer t.Abort()
	if _, err := t.Write(data); err != nil {
		return err
	}
	return t.Commit()
}
