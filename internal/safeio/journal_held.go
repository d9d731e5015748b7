package safeio

// This file holds the journal's held writes: files whose content stays in
// memory, not in the file system, until the next checkpoint
// (docs/durability.md, "Held writes").
//
// A committed write is durable in its segment; the file itself is only a
// copy that replay can always make again, so until the segment is
// checkpointed the copy may wait. A held write is kept in memory, and a
// later op on the same path (a removal, another write) simply replaces
// it: a file written and removed between two checkpoints (a spool entry
// picked up at once, a delivery record written in flight and again with
// its outcome) costs one file or none, instead of one per write. The
// files still there when the segment closes are written out together, in
// parallel, by the checkpointer before its syncfs: off the path that
// callers wait on. Memory is bounded by MaxHeld (beyond it a write is
// applied at once, as if it were not held); Close and WriteOut write every
// held file out. The price: while the daemon runs, such a file is read
// through the journal (Journal.ReadFile), never from the directory.

import (
	"cmp"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Held marks a WriteOp or an InPlaceOp as held: a file that only the
// journal's owner reads while it runs, and then only through
// Journal.ReadFile and Journal.Version (or after WriteOut). Its content is
// kept in memory and reaches the file system when the segment that
// committed it is checkpointed (by size or age, at Close, or when WriteOut
// asks), written the way the op says (a WriteOp's temporary file and
// rename, so a reader of the directory never sees a part; an InPlaceOp's
// overwrite), unless a later op on the path replaces it first. A reader of
// the directory sees the file late, or never if it was removed in between;
// after a crash, replay writes it. The journal keeps the op's data: the
// caller must not change it afterwards. Other ops are returned unchanged.
func (o Op) Held() Op {
	if o.kind == opWrite || o.kind == opInPlace {
		o.held = true
	}
	return o
}

// heldFile is a held write's content, by the path relative to the root.
type heldFile struct {
	kind  byte   // opWrite or opInPlace: how it is written out
	rel   string // the key
	path  string // absolute, for writing it out
	data  []byte
	perm  os.FileMode
	stamp int64 // unique per held write, for Version
}

// heldFiles is guarded by its own mutex: the committer changes it, readers
// (ReadFile, Version) look at it from any goroutine.
type heldFiles struct {
	mu    sync.Mutex
	m     map[string]heldFile
	bytes int
	stamp int64
	// stripes serialise, per path, writing a held file out (the
	// checkpointer) against applying a later op to it (the committer):
	// otherwise a write-out racing a removal could bring the file back
	// after it.
	stripes [64]sync.Mutex
}

// stripe returns the lock of rel's stripe.
func (h *heldFiles) stripe(rel string) *sync.Mutex {
	x := fnv.New32a()
	_, _ = x.Write([]byte(rel))
	return &h.stripes[x.Sum32()%uint32(len(h.stripes))]
}

// FileVersion identifies one content of a file the journal serves: two
// equal versions of a path are the same content. It is the zero value when
// the file does not exist.
type FileVersion struct {
	// Ino is the file's inode, -1 for a held write; Stamp its modification
	// time, or the held write's sequence number.
	Ino, Size, Stamp int64
}

// ReadFile returns the content of path as the journal's ops left it: a
// held write's data when one stands (not to be changed), else the file's.
func (j *Journal) ReadFile(path string) ([]byte, error) {
	rel, err := j.rel(path)
	if err != nil {
		return nil, err
	}
	j.held.mu.Lock()
	h, ok := j.held.m[rel]
	j.held.mu.Unlock()
	if ok {
		return h.data, nil
	}
	return os.ReadFile(path)
}

// Version identifies the current content of path (see FileVersion); ok is
// false when there is none.
func (j *Journal) Version(path string) (v FileVersion, ok bool) {
	if rel, err := j.rel(path); err == nil {
		j.held.mu.Lock()
		h, held := j.held.m[rel]
		j.held.mu.Unlock()
		if held {
			return FileVersion{Ino: -1, Size: int64(len(h.data)), Stamp: h.stamp}, true
		}
	}
	return StatVersion(path)
}

// StatVersion is Version for a file no journal holds: its inode, size and
// modification time.
func StatVersion(path string) (FileVersion, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return FileVersion{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileVersion{}, false
	}
	return FileVersion{Ino: int64(st.Ino), Size: fi.Size(), Stamp: fi.ModTime().UnixNano()}, true
}

// WriteOut writes every held file to the file system now (they stay in the
// journal until their segment's checkpoint), for a caller about to list a
// directory the journal writes into.
func (j *Journal) WriteOut() error {
	j.held.mu.Lock()
	none := len(j.held.m) == 0
	j.held.mu.Unlock()
	if none {
		return nil // a write committed meanwhile is later than the caller's look
	}
	req := &request{writeOut: true, done: make(chan result, 1)}
	return j.submit(req).err
}

// HeldIn returns the files held right now directly in dir (by name, with
// their content, not to be changed): for a caller listing dir, which would
// not see them yet.
func (j *Journal) HeldIn(dir string) map[string][]byte {
	rel, err := j.rel(filepath.Join(dir, "x"))
	if err != nil {
		return nil
	}
	prefix := strings.TrimSuffix(rel, "x")
	h := &j.held
	h.mu.Lock()
	defer h.mu.Unlock()
	var out map[string][]byte
	for r, f := range h.m {
		name, ok := strings.CutPrefix(r, prefix)
		if !ok || strings.Contains(name, "/") {
			continue
		}
		if out == nil {
			out = make(map[string][]byte)
		}
		out[name] = f.data
	}
	return out
}

// hold keeps a committed held write in memory instead of applying it,
// unless that would take the held files over MaxHeld: then it is written
// now, like any op (in a queue the youngest files wait longest, so those
// are the ones to write). It reports whether it held the write. Only the
// committer adds to the map; a write-out removes what it wrote (under the
// path's stripe).
func (j *Journal) hold(o *Op, rel string) bool {
	h := &j.held
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.m[rel]
	if h.bytes-len(old.data)+len(o.data) > j.opt.MaxHeld {
		return false
	}
	if h.m == nil {
		h.m = make(map[string]heldFile)
	}
	if had {
		h.bytes -= len(old.data)
		j.absorbed.Add(1)
	}
	h.stamp++
	h.m[rel] = heldFile{kind: o.kind, rel: rel, path: o.path, data: o.data, perm: o.perm, stamp: h.stamp}
	h.bytes += len(o.data)
	return true
}

// unhold forgets the held write of rel, once a later op on the path has
// been applied to the file system (not before: a reader meanwhile sees the
// held content, the state before that op, never an older one).
func (j *Journal) unhold(rel string) {
	h := &j.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.m[rel]; ok {
		h.bytes -= len(old.data)
		delete(h.m, rel)
		j.absorbed.Add(1)
	}
}

// writeOutHeld writes every held file to the file system as its op says
// (a crash in the middle is repaired by replay: the segment is still
// there) and forgets each once written. On failure the ones not written
// stay held.
func (j *Journal) writeOutHeld() error {
	return j.writeOut(j.heldSnapshot())
}

// heldSnapshot returns the held files, oldest first.
func (j *Journal) heldSnapshot() []heldFile {
	h := &j.held
	h.mu.Lock()
	files := make([]heldFile, 0, len(h.m))
	for _, f := range h.m {
		files = append(files, f)
	}
	h.mu.Unlock()
	slices.SortFunc(files, func(a, b heldFile) int { return cmp.Compare(a.stamp, b.stamp) })
	return files
}

// writeOut writes files (held ones) to the file system, in parallel, each
// only if it is still held with the same content (a later op did not
// replace or remove it), and forgets each once written.
func (j *Journal) writeOut(files []heldFile) error {
	if len(files) == 0 {
		return nil
	}
	errs := make([]error, len(files))
	var n atomic.Uint64
	inParallel(len(files), func(i int) {
		written, err := j.writeOutOne(files[i])
		if written {
			n.Add(1)
		}
		errs[i] = err
	})
	j.wroteOut.Add(n.Load())
	return errors.Join(errs...)
}

// writeOutOne writes the held file f out under its path's stripe lock, so
// that no op on the path is applied meanwhile.
func (j *Journal) writeOutOne(f heldFile) (written bool, err error) {
	h := &j.held
	mu := h.stripe(f.rel)
	mu.Lock()
	defer mu.Unlock()
	h.mu.Lock()
	cur, ok := h.m[f.rel]
	h.mu.Unlock()
	if !ok || cur.stamp != f.stamp {
		return false, nil // replaced or removed since: nothing to write
	}
	if err := j.inject(StepApply, f.path); err != nil {
		return false, err
	}
	if err := applyOp(f.kind, f.path, "", f.data, f.perm, false); err != nil {
		return false, err
	}
	h.mu.Lock()
	if cur, ok := h.m[f.rel]; ok && cur.stamp == f.stamp {
		delete(h.m, f.rel)
		h.bytes -= len(f.data)
	}
	h.mu.Unlock()
	return true, nil
}
