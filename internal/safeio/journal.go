package safeio

// This file holds the redo journal: group commit for small durable writes.
// docs/durability.md ("The journal") explains why it is safe; the short
// version:
//
//   - An op (write a whole file, remove files, install a fsynced temporary
//     file under its final name) is appended to the current segment as one
//     record: length, CRC32C, payload.
//   - One committer goroutine fdatasyncs the segment once for every op
//     waiting, then applies the committed ops to the file system in journal
//     order (temporary file and rename, no fsync), and only then wakes their
//     callers. Every file state on disk therefore has its record committed.
//   - A checkpoint closes a segment (by size or age), makes the file system
//     durable with one syncfs(2) and deletes the segment. Segments are
//     deleted strictly in order.
//   - Opening the journal replays what is left: for every path, the last
//     op the segments hold, in journal order (a write whose file already
//     holds its content is skipped); a torn tail is cut off. The replayed
//     segments are then checkpointed in the background like closed ones.
//     The owners of the files read their directories only after the replay.
//
// The lock story: mu guards the queue of requests and closed; everything
// else belongs to the committer goroutine (the segment, broken) or to the
// checkpointer goroutine (the closed segments it holds).

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// JournalDirName is the directory, inside the root a journal serves, that
// holds its segments.
const JournalDirName = "journal"

// Defaults of JournalOptions.
const (
	DefaultSegmentSize  = 8 << 20
	DefaultSegmentAge   = 5 * time.Second
	DefaultMaxJournaled = 256 << 10
	// maxRecord bounds a record's payload when reading a segment, so a
	// damaged length cannot make replay allocate without limit. Writes
	// above MaxJournaled never become records, so it only has to hold
	// MaxJournaled plus a path.
	maxRecord = 16 << 20
	// maxSegmentOffset bounds an offset a cancel record names.
	maxSegmentOffset = 1 << 40
)

// segMagic opens every segment; the number is the format version.
const segMagic = "HERALD-JOURNAL 1\n"

// segExt ends a segment's name; the name before it is its sequence number
// in 16 hex digits, so names sort in journal order.
const segExt = ".seg"

// Op kinds, the first byte of a record's payload.
const (
	opWrite   byte = 'W' // path, perm, data: the file's whole new content
	opInPlace byte = 'O' // as opWrite, applied in place (InPlaceOp)
	opRemove  byte = 'R' // path
	opInstall byte = 'I' // path, src: rename the fsynced file src to path
	opCancel  byte = 'C' // offsets: earlier records of this segment replay skips
)

// StepApply is where a committed op is applied to the file system; a
// failure injected there behaves as a failed rename (the journal then
// repairs itself, see Journal.Apply).
const StepApply Step = "apply"

// JournalOptions configure a Journal; the zero value is usable.
type JournalOptions struct {
	// SegmentSize and SegmentAge say when the current segment is closed
	// and checkpointed (defaults DefaultSegmentSize, DefaultSegmentAge).
	SegmentSize int64
	SegmentAge  time.Duration
	// MaxJournaled is the largest file content that goes into the journal
	// (default DefaultMaxJournaled). A larger WriteOp is written the
	// direct way (temporary file, fsync, directory fsync) and only its
	// installation under the final name is journaled, so a big mail is
	// neither copied into the journal nor held in memory twice.
	MaxJournaled int
	Logger       *slog.Logger
	// Fail, when set, is called before each step with the path of the op
	// (StepWrite: appending its record; StepSync: the commit of its batch;
	// StepApply: applying it); a non-nil error fails that step as a real
	// failure would. Tests only.
	Fail func(step Step, path string) error
	// Sync is the commit's flush of a segment (default fdatasync); tests
	// count or fail it.
	Sync func(f *os.File) error
	// SyncFS makes everything written under dir durable, for checkpoints
	// (default syncfs(2) on dir).
	SyncFS func(dir string) error
}

// Op is one change a Journal makes durable: see WriteOp and RemoveOp.
type Op struct {
	kind byte
	path string
	src  string
	data []byte
	perm os.FileMode
	tmp  *Temp // an install's open temporary file, closed once applied
}

// WriteOp replaces the file at path with data (mode perm), atomically:
// readers see the old content or the new, never a part.
func WriteOp(path string, data []byte, perm os.FileMode) Op {
	return Op{kind: opWrite, path: path, data: data, perm: perm.Perm()}
}

// InPlaceOp is WriteOp for a file that nobody reads while the journal's
// owner runs except the owner itself after the op returned (the queue's
// delivery records, a mail whose event file commits it later): it is
// overwritten in place, so it costs no new file (an inode, a rename) on
// every write, but a reader racing the apply, or a reader of the files of
// a crashed process before its journal is replayed, may see a part. After a
// crash the replay restores it whole.
func InPlaceOp(path string, data []byte, perm os.FileMode) Op {
	return Op{kind: opInPlace, path: path, data: data, perm: perm.Perm()}
}

// RemoveOp removes the file at path; a missing file is no error.
func RemoveOp(path string) Op { return Op{kind: opRemove, path: path} }

// JournalError is a failure of the journal: the op was not made durable (or,
// for Applied errors, durable but not yet visible). It is temporary: the
// caller answers "try again later".
type JournalError struct {
	Op  string
	Err error
}

func (e *JournalError) Error() string   { return "journal: " + e.Op + ": " + e.Err.Error() }
func (e *JournalError) Unwrap() error   { return e.Err }
func (e *JournalError) Temporary() bool { return true }

// ErrJournalClosed is returned by ops submitted after Close.
var ErrJournalClosed = errors.New("journal closed")

// JournalStats counts what a journal did, for tests and measurements.
type JournalStats struct {
	Ops         uint64 // ops committed
	Commits     uint64 // flushes of a segment that succeeded
	Checkpoints uint64 // segments made durable and deleted
	Replayed    uint64 // ops applied by replay (Open and repairs)
}

// Journal makes small durable writes cheap: concurrent ops share one
// fdatasync (group commit). Create it with OpenJournal before anything
// reads the files it writes, and route every write and removal of those
// files through it.
type Journal struct {
	root string // the tree whose files the journal writes
	dir  string // root/journal
	opt  JournalOptions
	log  *slog.Logger

	mu      sync.Mutex
	pending []*request
	closed  bool
	wake    chan struct{}
	done    chan struct{} // closed when the committer has stopped

	// The committer's own.
	seg      *os.File
	segPath  string
	segSeq   uint64
	segSize  int64
	segBorn  time.Time
	segOps   int   // records in the current segment
	broken   error // an applied op failed; see repair
	triedFix time.Time
	buf      []byte
	closeErr error
	ckpt     chan string // closed segments, in order, to the checkpointer
	ckptDone chan struct{}
	ckptErr  atomic.Pointer[error]
	ops      atomic.Uint64
	commits  atomic.Uint64
	ckpts    atomic.Uint64
	replayed atomic.Uint64
}

// request is one Apply call waiting for its commit.
type request struct {
	ops  []Op
	rels []string
	offs []int64 // where each op's record starts, in j.buf, then in the segment
	done chan result
}

type result struct {
	err error
	// committed: the ops are in the journal (replay applies them) even
	// though err says they are not applied yet.
	committed bool
}

// OpenJournal opens the journal of the tree root (its segments live in
// root/journal), replays what a crash left there, makes that durable and
// starts the committer. Call Close when done.
func OpenJournal(root string, opt JournalOptions) (*Journal, error) {
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if opt.SegmentAge <= 0 {
		opt.SegmentAge = DefaultSegmentAge
	}
	if opt.MaxJournaled <= 0 {
		opt.MaxJournaled = DefaultMaxJournaled
	}
	if opt.MaxJournaled > maxRecord/2 {
		opt.MaxJournaled = maxRecord / 2
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Sync == nil {
		opt.Sync = fdatasync
	}
	if opt.SyncFS == nil {
		opt.SyncFS = syncFS
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	j := &Journal{
		root: root, dir: filepath.Join(root, JournalDirName), opt: opt, log: opt.Logger,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		ckpt: make(chan string, 64), ckptDone: make(chan struct{}),
	}
	if err := os.Mkdir(j.dir, 0o700); err == nil {
		if err := SyncDir(root); err != nil {
			return nil, &JournalError{Op: "open", Err: err}
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, &JournalError{Op: "open", Err: err}
	}
	segs, err := j.segments()
	if err != nil {
		return nil, &JournalError{Op: "open", Err: err}
	}
	if len(segs) > 0 {
		n, err := j.replay(segs)
		if err != nil {
			return nil, &JournalError{Op: "replay", Err: err}
		}
		// The replayed segments are checkpointed like any closed one, in
		// the background and before any new segment: the start-up does
		// not wait for a syncfs, and a crash before it replays them again.
		j.log.Info("journal replayed", "dir", j.dir, "segments", len(segs), "ops", n)
		seq, _ := segSeq(segs[len(segs)-1])
		j.segSeq = seq
	}
	go j.checkpointer(segs)
	go j.committer()
	return j, nil
}

// Root returns the tree the journal serves.
func (j *Journal) Root() string { return j.root }

// Stats returns what the journal did so far.
func (j *Journal) Stats() JournalStats {
	return JournalStats{Ops: j.ops.Load(), Commits: j.commits.Load(), Checkpoints: j.ckpts.Load(), Replayed: j.replayed.Load()}
}

// WriteFile replaces path with data durably: see Apply.
func (j *Journal) WriteFile(path string, data []byte, perm os.FileMode) error {
	return j.Apply(WriteOp(path, data, perm))
}

// Remove removes paths durably (missing ones are fine): see Apply.
func (j *Journal) Remove(paths ...string) error {
	ops := make([]Op, len(paths))
	for i, p := range paths {
		ops[i] = RemoveOp(p)
	}
	return j.Apply(ops...)
}

// Apply makes ops durable and visible, in order, and returns once they are
// both: their records committed (one fdatasync shared with every op waiting
// at the time) and the files changed. The ops of one call commit together:
// after a crash a torn tail may keep a prefix of them, never a later op
// without an earlier one.
//
// An error means the ops are not acknowledged, and none of them takes
// effect later: if the commit failed they are not in the journal; if
// applying a committed op failed (a full disk while creating the file, a
// read-only directory) a cancel record makes replay skip it, the call's
// later ops and later ops on its paths (ops of the call applied before it
// stay, as with a sequence of direct writes). Only if that cancel record
// cannot be committed either does the journal answer every op with an
// error until it has applied the failed ops from its segment (tried at
// once and then at most once a second) or, failing that, at the next Open:
// then a caller told "failed" may later see its change. Never does a
// caller lose a change it was told succeeded.
func (j *Journal) Apply(ops ...Op) error {
	if len(ops) == 0 {
		return nil
	}
	req := &request{ops: ops, rels: make([]string, len(ops)), done: make(chan result, 1)}
	for i := range req.ops {
		o := &req.ops[i]
		rel, err := j.rel(o.path)
		if err != nil {
			return &JournalError{Op: "apply", Err: err}
		}
		req.rels[i] = rel
		if (o.kind == opWrite || o.kind == opInPlace) && len(o.data) > j.opt.MaxJournaled {
			// Too big to journal: the content goes the direct way, the
			// rename is journaled.
			t, err := writeTemp(o.path, o.data, o.perm)
			if err != nil {
				for _, p := range req.ops[:i] {
					p.abortInstall()
				}
				return &JournalError{Op: "write " + o.path, Err: err}
			}
			*o = Op{kind: opInstall, path: o.path, src: t.File.Name(), tmp: t}
		}
	}
	res := j.submit(req)
	for _, o := range req.ops {
		if res.committed {
			o.closeInstall()
		} else {
			o.abortInstall()
		}
	}
	return res.err
}

// Commit installs the temporary file t under its destination through the
// journal: t is fsynced and its directory entry made durable (the direct
// way: it may be big), then the rename is journaled, so it orders with
// every other op on that path. t stays open (and any lock on it held)
// until it is installed. Like Temp.Commit, only nil means durable.
func (j *Journal) Commit(t *Temp) error {
	if t.done {
		return errors.New("safeio: commit after commit or abort")
	}
	if err := hook(StepSync, t.dest); err != nil {
		t.Abort()
		return err
	}
	if err := t.File.Sync(); err != nil {
		t.Abort()
		return err
	}
	if err := SyncDir(filepath.Dir(t.dest)); err != nil {
		t.Abort()
		return err
	}
	rel, err := j.rel(t.dest)
	if err != nil {
		t.Abort()
		return &JournalError{Op: "commit", Err: err}
	}
	o := Op{kind: opInstall, path: t.dest, src: t.File.Name(), tmp: t}
	res := j.submit(&request{ops: []Op{o}, rels: []string{rel}, done: make(chan result, 1)})
	if res.committed {
		o.closeInstall()
	} else {
		o.abortInstall()
	}
	return res.err
}

// Close commits what is waiting, checkpoints every segment and stops. A
// segment that could not be made durable stays for the next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		<-j.ckptDone
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	j.signal()
	<-j.done
	<-j.ckptDone
	if p := j.ckptErr.Load(); p != nil {
		return errors.Join(j.closeErr, *p)
	}
	return j.closeErr
}

func (o Op) closeInstall() {
	if o.tmp != nil {
		o.tmp.done = true
		_ = o.tmp.File.Close()
	}
}

func (o Op) abortInstall() {
	if o.tmp != nil {
		o.tmp.done = false
		o.tmp.Abort()
	}
}

// writeTemp writes data to a fsynced temporary file beside path, its
// directory entry durable, and returns it still open.
func writeTemp(path string, data []byte, perm os.FileMode) (*Temp, error) {
	t, err := Create(path, perm)
	if err != nil {
		return nil, err
	}
	if _, err := t.Write(data); err != nil {
		t.Abort()
		return nil, err
	}
	if err := t.File.Sync(); err != nil {
		t.Abort()
		return nil, err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		t.Abort()
		return nil, err
	}
	return t, nil
}

// rel returns path relative to the journal's root; records store that, so
// a state directory can move.
func (j *Journal) rel(path string) (string, error) {
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		path = abs
	}
	rel, err := filepath.Rel(j.root, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is outside the journal's tree %s", path, j.root)
	}
	if rel == JournalDirName || strings.HasPrefix(rel, JournalDirName+"/") {
		return "", fmt.Errorf("%s is inside the journal itself", path)
	}
	return rel, nil
}

func (j *Journal) submit(req *request) result {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return result{err: &JournalError{Op: "apply", Err: ErrJournalClosed}}
	}
	j.pending = append(j.pending, req)
	j.mu.Unlock()
	j.signal()
	return <-req.done
}

func (j *Journal) signal() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// committer is the one goroutine that appends, flushes and applies.
func (j *Journal) committer() {
	defer close(j.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		j.mu.Lock()
		batch := j.pending
		j.pending = nil
		closed := j.closed
		j.mu.Unlock()
		if len(batch) > 0 {
			j.commit(batch)
			continue // more may have arrived meanwhile: they form the next batch
		}
		if closed {
			if j.broken != nil {
				j.triedFix = time.Time{} // one last try, whatever the rate
				j.repair()
			}
			j.rotate()
			if j.seg != nil { // broken: the segment stays for the next Open
				j.closeErr = &JournalError{Op: "close", Err: fmt.Errorf("ops not applied, left for replay: %w", j.broken)}
				_ = j.seg.Close()
			}
			close(j.ckpt)
			return
		}
		if j.seg != nil && time.Since(j.segBorn) >= j.opt.SegmentAge {
			j.rotate()
		}
		wait := time.Hour
		if j.seg != nil {
			wait = j.opt.SegmentAge - time.Since(j.segBorn)
		}
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-j.wake:
		case <-timer.C:
		}
	}
}

// commit appends a batch, flushes it once, applies it and answers its
// callers.
func (j *Journal) commit(batch []*request) {
	if j.broken != nil && !j.repair() {
		for _, r := range batch {
			r.done <- result{err: &JournalError{Op: "apply", Err: fmt.Errorf("an earlier op could not be applied, retrying it: %w", j.broken)}}
		}
		return
	}
	// Append: each request's records, or its failure.
	live := batch[:0:0]
	j.buf = j.buf[:0]
	for _, r := range batch {
		var ferr error
		if j.opt.Fail != nil {
			for _, o := range r.ops {
				if err := j.opt.Fail(StepWrite, o.path); err != nil {
					ferr = fmt.Errorf("%s %s: %w", StepWrite, o.path, err)
					break
				}
			}
		}
		if ferr != nil {
			r.done <- result{err: &JournalError{Op: "append", Err: ferr}}
			continue
		}
		r.offs = make([]int64, len(r.ops))
		for i := range r.ops {
			r.offs[i] = int64(len(j.buf))
			j.buf = appendRecord(j.buf, &r.ops[i], r.rels[i])
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	base, err := j.flush(live)
	if err != nil {
		for _, r := range live {
			r.done <- result{err: &JournalError{Op: "commit", Err: err}}
		}
		return
	}
	// Committed: apply. Requests that share no path are independent and
	// are applied in parallel (file creation is the expensive part);
	// requests that share one are applied one after the other in journal
	// order. An op that cannot be applied (a full disk, a read-only
	// directory) fails its request: the request's later ops, and later ops
	// on the same paths, are not applied either, and one cancel record,
	// committed before anyone is answered, makes replay skip them all. The
	// file states stay what the journal says.
	errs := make([]error, len(live))
	groups := conflictGroups(live)
	cancels := make([][]int64, len(groups))
	if len(groups) == 1 {
		cancels[0] = j.applyGroup(live, groups[0], base, errs)
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, applyWorkers)
		for gi, g := range groups {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				cancels[gi] = j.applyGroup(live, g, base, errs)
				<-sem
			}()
		}
		wg.Wait()
	}
	var cancel []int64
	for _, c := range cancels {
		cancel = append(cancel, c...)
	}
	slices.Sort(cancel)
	if len(cancel) > 0 {
		if err := j.commitCancel(cancel); err != nil {
			// The cancelled ops stay in the segment: the journal applies
			// them when it repairs itself (or at the next Open), so their
			// callers, told of a failure, may see them later.
			j.broken = err
			j.log.Error("journal: cannot commit the cancel record; ops fail until the journal repairs itself", "segment", j.segPath, "err", err)
		}
	}
	for ri, r := range live {
		switch {
		case errs[ri] == nil:
			r.done <- result{committed: true}
		case j.broken != nil:
			r.done <- result{committed: true, err: &JournalError{Op: "apply", Err: errs[ri]}}
		default:
			r.done <- result{err: &JournalError{Op: "apply", Err: errs[ri]}}
		}
	}
	if j.segSize >= j.opt.SegmentSize {
		j.rotate()
	}
}

// applyWorkers bounds the goroutines applying one batch.
const applyWorkers = 8

// conflictGroups partitions a batch's requests (by index) into groups such
// that two requests touching the same path are in the same group, each
// group in journal order.
func conflictGroups(live []*request) [][]int {
	parent := make([]int, len(live))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := make(map[string]int, len(live))
	for ri, r := range live {
		for _, o := range r.ops {
			if prev, ok := owner[o.path]; ok {
				a, b := find(prev), find(ri)
				if a != b {
					parent[max(a, b)] = min(a, b)
				}
			} else {
				owner[o.path] = ri
			}
		}
	}
	idx := map[int]int{}
	var groups [][]int
	for ri := range live {
		root := find(ri)
		gi, ok := idx[root]
		if !ok {
			gi = len(groups)
			idx[root] = gi
			groups = append(groups, nil)
		}
		groups[gi] = append(groups[gi], ri)
	}
	return groups
}

// applyGroup applies the requests live[g...] in order, setting errs for
// those that fail, and returns the offsets of the records to cancel.
func (j *Journal) applyGroup(live []*request, g []int, base int64, errs []error) []int64 {
	var cancel []int64
	var failed map[string]bool
	for _, ri := range g {
		r := live[ri]
		for i := range r.ops {
			o := &r.ops[i]
			if errs[ri] == nil && !failed[o.path] {
				err := j.applyStep(o)
				if err == nil {
					continue
				}
				j.log.Error("journal: cannot apply a committed op; cancelling it", "path", o.path, "err", err)
				errs[ri] = err
			} else if errs[ri] == nil {
				errs[ri] = fmt.Errorf("an earlier op on %s failed", o.path)
			}
			if failed == nil {
				failed = map[string]bool{}
			}
			failed[o.path] = true
			cancel = append(cancel, base+r.offs[i])
		}
	}
	return cancel
}

// commitCancel appends and flushes a record that cancels the records at
// offs of the current segment.
func (j *Journal) commitCancel(offs []int64) error {
	j.buf = appendCancel(j.buf[:0], offs)
	_, err := j.seg.Write(j.buf)
	if err == nil {
		if err = j.opt.Sync(j.seg); err == nil {
			j.segSize += int64(len(j.buf))
			return nil
		}
	}
	// Cut the record off again, so that what the segment says is known:
	// the ops stand, and repair applies them.
	if terr := j.seg.Truncate(j.segSize); terr != nil {
		err = errors.Join(err, terr)
	}
	return fmt.Errorf("cancel record in %s: %w", j.segPath, err)
}

// flush appends j.buf to the current segment (opening one if needed) and
// flushes it. On failure the records are cut off again and the segment is
// closed: after a failed fdatasync, later flushes of the same file prove
// nothing about the failed data (the kernel may have dropped those dirty
// pages), so the next batch goes into a new segment.
func (j *Journal) flush(batch []*request) (int64, error) {
	if j.seg == nil {
		if err := j.newSegment(); err != nil {
			return 0, err
		}
	}
	good := j.segSize
	err := func() error {
		if _, err := j.seg.Write(j.buf); err != nil {
			return fmt.Errorf("write %s: %w", j.segPath, err)
		}
		if j.opt.Fail != nil {
			for _, r := range batch {
				for _, o := range r.ops {
					if err := j.opt.Fail(StepSync, o.path); err != nil {
						return fmt.Errorf("%s %s: %w", StepSync, o.path, err)
					}
				}
			}
		}
		if err := j.opt.Sync(j.seg); err != nil {
			return fmt.Errorf("fdatasync %s: %w", j.segPath, err)
		}
		return nil
	}()
	if err != nil {
		j.log.Error("journal: commit failed; nothing of the batch is acknowledged", "segment", j.segPath, "ops", countOps(batch), "err", err)
		if terr := j.seg.Truncate(good); terr != nil {
			j.log.Warn("journal: cannot cut the failed batch off its segment", "segment", j.segPath, "err", terr)
		} else if serr := j.opt.Sync(j.seg); serr != nil {
			// Replay may find the failed batch: ops never acknowledged,
			// applied late (at worst a duplicate, never a loss).
			j.log.Warn("journal: cannot flush the cut segment", "segment", j.segPath, "err", serr)
		}
		j.rotate()
		return 0, err
	}
	j.segSize += int64(len(j.buf))
	n := countOps(batch)
	j.segOps += n
	j.ops.Add(uint64(n))
	j.commits.Add(1)
	return good, nil
}

func countOps(batch []*request) int {
	n := 0
	for _, r := range batch {
		n += len(r.ops)
	}
	return n
}

// newSegment creates the next segment and makes its directory entry
// durable, so that its flushed records are found after a crash.
func (j *Journal) newSegment() error {
	j.segSeq++
	p := filepath.Join(j.dir, fmt.Sprintf("%016x%s", j.segSeq, segExt))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if _, err := f.WriteString(segMagic); err != nil {
		_ = f.Close()
		_ = os.Remove(p)
		return fmt.Errorf("create segment: %w", err)
	}
	if err := SyncDir(j.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(p)
		return fmt.Errorf("create segment: %w", err)
	}
	j.seg, j.segPath, j.segSize, j.segBorn, j.segOps = f, p, int64(len(segMagic)), time.Now(), 0
	return nil
}

// rotate closes the current segment and hands it to the checkpointer.
// Every op in it is applied (or the journal is broken, and repair keeps
// the segment current until it is).
func (j *Journal) rotate() {
	if j.seg == nil || j.broken != nil {
		return
	}
	if err := j.seg.Close(); err != nil {
		j.log.Warn("journal: close segment", "segment", j.segPath, "err", err)
	}
	j.ckpt <- j.segPath
	j.seg, j.segPath = nil, ""
}

// repair applies the current segment again (every path's last op in it,
// cancelled ones skipped), once the journal is broken because a cancel
// record could not be committed; it reports whether the journal works
// again. The ops the cancel was for are applied then.
func (j *Journal) repair() bool {
	if j.broken == nil {
		return true
	}
	if !j.triedFix.IsZero() && time.Since(j.triedFix) < time.Second {
		return false
	}
	j.triedFix = time.Now()
	if j.seg != nil {
		if _, err := j.replay([]string{j.segPath}); err != nil {
			j.log.Error("journal: repair failed; ops fail until it succeeds", "segment", j.segPath, "err", err)
			return false
		}
	}
	j.log.Info("journal: repaired; every committed op is applied", "segment", j.segPath)
	j.broken, j.triedFix = nil, time.Time{}
	j.rotate()
	return true
}

// checkpointer makes closed segments durable in the file system and
// deletes them, in order. A segment whose checkpoint fails is kept (and so
// is every later one) and tried again with the next.
func (j *Journal) checkpointer(held []string) {
	defer close(j.ckptDone)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	try := func() {
		if len(held) == 0 {
			return
		}
		if err := j.opt.SyncFS(j.root); err != nil {
			j.log.Error("journal: checkpoint failed; the segments stay for replay", "segments", len(held), "err", err)
			e := error(&JournalError{Op: "checkpoint", Err: err})
			j.ckptErr.Store(&e)
			return
		}
		for len(held) > 0 {
			if err := os.Remove(held[0]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				j.log.Error("journal: cannot delete a checkpointed segment", "segment", held[0], "err", err)
				e := error(&JournalError{Op: "checkpoint", Err: err})
				j.ckptErr.Store(&e)
				return
			}
			held = held[1:]
			j.ckpts.Add(1)
		}
		// The deletions are durable before any later segment goes, so
		// replay never runs an old segment over newer state.
		if err := SyncDir(j.dir); err != nil {
			j.log.Warn("journal: fsync of the journal directory failed", "err", err)
		}
		j.ckptErr.Store(nil)
	}
	try()
	for {
		select {
		case s, ok := <-j.ckpt:
			if !ok {
				try()
				return
			}
			held = append(held, s)
			// Take every segment already waiting: one syncfs for all.
			for more := true; more; {
				select {
				case s, ok := <-j.ckpt:
					if !ok {
						try()
						return
					}
					held = append(held, s)
				default:
					more = false
				}
			}
			try()
		case <-retry.C:
			try()
		}
	}
}

// applyStep applies one committed op (failure injection first).
func (j *Journal) applyStep(o *Op) error {
	if j.opt.Fail != nil {
		if err := j.opt.Fail(StepApply, o.path); err != nil {
			return fmt.Errorf("%s %s: %w", StepApply, o.path, err)
		}
	}
	return applyOp(o.kind, o.path, o.src, o.data, o.perm, false)
}

// applyOp changes the file system as one record says. Idempotent, for
// replay: an install whose temporary file is gone was applied before.
func applyOp(kind byte, path, src string, data []byte, perm os.FileMode, replay bool) error {
	switch kind {
	case opWrite:
		if replay && holds(path, data, perm) {
			return nil // applied before the crash: no new file to write
		}
		f, err := os.CreateTemp(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-")
		if err != nil {
			return err
		}
		_, werr := f.Write(data)
		if werr == nil && perm != 0o600 {
			werr = f.Chmod(perm)
		}
		cerr := f.Close()
		if err := errors.Join(werr, cerr); err != nil {
			_ = os.Remove(f.Name())
			return err
		}
		if err := os.Rename(f.Name(), path); err != nil {
			_ = os.Remove(f.Name())
			return err
		}
		return nil
	case opInPlace:
		if replay && holds(path, data, perm) {
			return nil
		}
		return overwrite(path, data, perm)
	case opRemove:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	case opInstall:
		err := os.Rename(src, path)
		if replay && errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Lstat(path); serr == nil {
				return nil // installed before the crash
			}
		}
		return err
	}
	return fmt.Errorf("unknown op %q", kind)
}

// overwrite replaces the content of path with data in place: written from
// the start, then cut to its length (not truncated to zero first, which
// would make ext4 flush it at close).
func overwrite(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	_, werr := f.WriteAt(data, 0)
	if werr == nil {
		werr = f.Truncate(int64(len(data)))
	}
	if werr == nil {
		if st, err := f.Stat(); err != nil {
			werr = err
		} else if st.Mode().Perm() != perm {
			werr = f.Chmod(perm)
		}
	}
	return errors.Join(werr, f.Close())
}

// holds reports whether the file at path has exactly data and mode perm.
func holds(path string, data []byte, perm os.FileMode) bool {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != perm || st.Size() != int64(len(data)) {
		return false
	}
	b, err := os.ReadFile(path)
	return err == nil && bytes.Equal(b, data)
}

// replay applies, for every path the segments name, its last op, in
// journal order, after cutting torn tails off. It returns the number of
// ops applied.
func (j *Journal) replay(segs []string) (int, error) {
	var all []record
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			return 0, err
		}
		recs, good, derr := decodeSegment(b)
		if derr != nil {
			j.log.Warn("journal: torn or damaged tail cut off (never acknowledged)", "segment", s, "at", good, "dropped_bytes", len(b)-good, "err", derr)
			if err := os.Truncate(s, int64(good)); err != nil {
				return 0, err
			}
		}
		cancelled := map[int64]bool{}
		for _, r := range recs {
			for _, c := range r.cancel {
				cancelled[c] = true
			}
		}
		for _, r := range recs {
			if r.kind != opCancel && !cancelled[r.off] {
				all = append(all, r)
			}
		}
	}
	last := make(map[string]int, len(all))
	for i, r := range all {
		last[r.rel] = i
	}
	n := 0
	for i, r := range all {
		if last[r.rel] != i {
			continue
		}
		p := filepath.Join(j.root, r.rel)
		src := ""
		if r.kind == opInstall {
			src = filepath.Join(j.root, r.src)
		}
		err := error(nil)
		if j.opt.Fail != nil {
			err = j.opt.Fail(StepApply, p)
		}
		if err == nil {
			err = applyOp(r.kind, p, src, r.data, r.perm, true)
		}
		if err != nil {
			if r.kind == opInstall && errors.Is(err, fs.ErrNotExist) {
				// Its temporary file and its destination are both gone:
				// a later removal that this segment does not hold cannot
				// exist (it would be the path's last op), so this is
				// damage, reported and skipped rather than fatal.
				j.log.Error("journal: install without its file", "path", p, "src", src)
				continue
			}
			return n, fmt.Errorf("replay %s: %w", p, err)
		}
		n++
	}
	j.replayed.Add(uint64(n))
	return n, nil
}

// segments lists the segment files in journal order.
func (j *Journal) segments() ([]string, error) {
	names, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, err
	}
	var segs []string
	for _, de := range names {
		if _, ok := segSeq(de.Name()); ok {
			segs = append(segs, filepath.Join(j.dir, de.Name()))
		} else {
			j.log.Warn("journal: unexpected file in the journal directory; ignored", "file", filepath.Join(j.dir, de.Name()))
		}
	}
	slices.Sort(segs)
	return segs, nil
}

// segSeq parses a segment's name (or path).
func segSeq(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(filepath.Base(name), segExt)
	if !ok || len(base) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 16, 64)
	return n, err == nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends op's record: payload length and CRC32C (little
// endian), then the payload.
func appendRecord(buf []byte, o *Op, rel string) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = append(buf, o.kind)
	buf = binary.AppendUvarint(buf, uint64(len(rel)))
	buf = append(buf, rel...)
	switch o.kind {
	case opWrite, opInPlace:
		buf = binary.AppendUvarint(buf, uint64(o.perm))
		buf = binary.AppendUvarint(buf, uint64(len(o.data)))
		buf = append(buf, o.data...)
	case opInstall:
		// src is beside path, in the same directory.
		buf = binary.AppendUvarint(buf, uint64(len(filepath.Base(o.src))))
		buf = append(buf, filepath.Base(o.src)...)
	}
	payload := buf[start+8:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// record is one decoded record; src is relative to the root.
type record struct {
	kind     byte
	rel, src string
	data     []byte
	perm     os.FileMode
	off      int64   // where it starts in its segment
	cancel   []int64 // opCancel: the offsets it cancels
}

// appendCancel appends a record cancelling the records at offs.
func appendCancel(buf []byte, offs []int64) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, opCancel)
	buf = binary.AppendUvarint(buf, uint64(len(offs)))
	for _, o := range offs {
		buf = binary.AppendUvarint(buf, uint64(o))
	}
	payload := buf[start+8:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// decodeSegment reads a segment's records. good is the length of the
// valid prefix; err says why the rest (if any) was not read.
func decodeSegment(b []byte) (recs []record, good int, err error) {
	if len(b) < len(segMagic) || string(b[:len(segMagic)]) != segMagic {
		if len(b) == 0 {
			return nil, 0, nil
		}
		return nil, 0, errors.New("no segment header")
	}
	off := len(segMagic)
	for off < len(b) {
		if len(b)-off < 8 {
			return recs, off, errors.New("torn record header")
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if n == 0 || n > maxRecord {
			return recs, off, fmt.Errorf("bad record length %d", n)
		}
		if len(b)-off-8 < n {
			return recs, off, errors.New("torn record")
		}
		payload := b[off+8 : off+8+n]
		if crc32.Checksum(payload, castagnoli) != sum {
			return recs, off, errors.New("record checksum mismatch")
		}
		r, err := decodePayload(payload)
		if err != nil {
			return recs, off, err
		}
		r.off = int64(off)
		if r.kind == opCancel {
			for _, c := range r.cancel {
				i, found := slices.BinarySearchFunc(recs, c, func(x record, c int64) int { return cmp.Compare(x.off, c) })
				if !found || recs[i].kind == opCancel {
					return recs, off, fmt.Errorf("cancel record names no earlier record at %d", c)
				}
			}
		}
		recs = append(recs, r)
		off += 8 + n
	}
	return recs, off, nil
}

func decodePayload(p []byte) (record, error) {
	var r record
	bad := func(what string) (record, error) { return record{}, fmt.Errorf("bad record: %s", what) }
	str := func() (string, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return "", false
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return s, true
	}
	r.kind, p = p[0], p[1:]
	if r.kind == opCancel {
		n, k := binary.Uvarint(p)
		if k <= 0 || n == 0 || n > uint64(len(p)) {
			return bad("cancel count")
		}
		p = p[k:]
		for range n {
			o, k := binary.Uvarint(p)
			if k <= 0 || o > maxSegmentOffset {
				return bad("cancel offset")
			}
			r.cancel = append(r.cancel, int64(o))
			p = p[k:]
		}
		if len(p) != 0 {
			return bad("trailing bytes")
		}
		return r, nil
	}
	var ok bool
	if r.rel, ok = str(); !ok || !validRel(r.rel) {
		return bad("path")
	}
	switch r.kind {
	case opWrite, opInPlace:
		perm, k := binary.Uvarint(p)
		if k <= 0 || perm > 0o777 {
			return bad("mode")
		}
		p = p[k:]
		r.perm = os.FileMode(perm)
		n, k := binary.Uvarint(p)
		if k <= 0 || n != uint64(len(p)-k) {
			return bad("data length")
		}
		r.data = p[k:]
		p = nil
	case opRemove:
	case opInstall:
		src, ok := str()
		if !ok || src == "" || strings.ContainsRune(src, '/') || src == "." || src == ".." {
			return bad("install source")
		}
		r.src = filepath.Join(filepath.Dir(r.rel), src)
	default:
		return bad(fmt.Sprintf("kind %q", r.kind))
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return r, nil
}

// validRel accepts a clean relative path that stays inside the root and
// outside the journal directory.
func validRel(rel string) bool {
	return rel != "" && !filepath.IsAbs(rel) && filepath.Clean(rel) == rel && rel != "." &&
		rel != ".." && !strings.HasPrefix(rel, "../") && rel != JournalDirName &&
		!strings.HasPrefix(rel, JournalDirName+"/") && !strings.ContainsRune(rel, 0)
}

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	rc, err := d.SyscallConn()
	var serr error
	if err == nil {
		err = rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) })
	}
	cerr := d.Close()
	return errors.Join(err, serr, cerr)
}
