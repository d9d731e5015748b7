package safeio

// This file holds the redo journal: group commit for small durable writes.
// docs/durability.md ("The journal") explains why it is safe; the short
// version:
//
//   - An op (write a whole file, remove files, install a fsynced temporary
//     file under its final name) is appended to the current segment as one
//     record: length, CRC32C, payload.
//   - One committer goroutine fdatasyncs the segment once for every op
//     waiting, then applies the committed ops to the file system (temporary
//     file and rename, or in place for InPlaceOp; no fsync), ops on one path
//     in journal order and independent ones in parallel, and only then wakes
//     their callers. Every file state on disk therefore has its record
//     committed. An op that cannot be applied is cancelled by a record of
//     its own before its caller hears of the failure.
//   - A held write (Op.Held, journal_held.go) is not applied at its commit:
//     its content stays in memory, read through the journal, until a later
//     op on the path replaces it or the segment closes.
//   - A checkpoint closes a segment (by size or age), writes out the files
//     held then, makes the file system durable with one syncfs(2) and
//     deletes the segment. Segments are deleted strictly in order.
//   - Opening the journal replays what is left: for every path, the last
//     op the segments hold, in journal order (a write whose file already
//     holds its content is skipped); a torn tail is cut off. The replayed
//     segments are then checkpointed in the background like closed ones.
//     The owners of the files read their directories only after the replay.
//
// The lock story: mu guards the queue of requests and closed; held has its
// own mutex, and a lock per path stripe that keeps a write-out and a later
// op on the same path apart (journal_held.go); everything else belongs to
// the committer goroutine (the segment, broken) or to the checkpointer
// goroutine (the closed segments it holds).

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// JournalDirName is the directory, inside the root a journal serves, that
// holds its segments.
const JournalDirName = "journal"

// Defaults of JournalOptions.
const (
	DefaultSegmentSize  = 8 << 20
	DefaultSegmentAge   = 5 * time.Second
	DefaultMaxJournaled = 256 << 10
	DefaultMaxHeld      = 16 << 20
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
// failure injected there behaves as a failed rename (the op is cancelled,
// see Journal.Apply).
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
	// MaxHeld bounds the content of held files kept in memory (default
	// DefaultMaxHeld); a held write beyond it is applied at once
	// (journal_held.go).
	MaxHeld int
	Logger  *slog.Logger
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
	held bool  // Op.Held: kept in memory until the checkpoint (journal_held.go)
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

// JournalError is a failure of the journal: the ops were not made durable
// and visible (see Journal.Apply). It is temporary: the caller answers "try
// again later".
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
	// Absorbed counts held writes replaced or removed before they reached
	// the file system, WrittenOut those written out (journal_held.go).
	Absorbed   uint64
	WrittenOut uint64
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
	ckpt     chan closedSegment // closed segments, in order, to the checkpointer
	ckptDone chan struct{}
	ckptErr  atomic.Pointer[error]
	ops      atomic.Uint64
	commits  atomic.Uint64
	ckpts    atomic.Uint64
	replayed atomic.Uint64
	absorbed atomic.Uint64
	wroteOut atomic.Uint64

	held heldFiles // held writes not yet on the file system
}

// request is one Apply call waiting for its commit.
type request struct {
	ops  []Op
	rels []string
	offs []int64 // where each op's record starts, in j.buf, then in the segment
	// writeOut: no ops, write the held files out (Journal.WriteOut).
	writeOut bool
	done     chan result
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
	if opt.MaxHeld <= 0 {
		opt.MaxHeld = DefaultMaxHeld
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
		ckpt: make(chan closedSegment, 64), ckptDone: make(chan struct{}),
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
	replayed := make([]closedSegment, len(segs))
	for i, s := range segs {
		replayed[i].path = s
	}
	go j.checkpointer(replayed)
	go j.committer()
	return j, nil
}

// Root returns the tree the journal serves.
func (j *Journal) Root() string { return j.root }

// Stats returns what the journal did so far.
func (j *Journal) Stats() JournalStats {
	return JournalStats{
		Ops: j.ops.Load(), Commits: j.commits.Load(), Checkpoints: j.ckpts.Load(), Replayed: j.replayed.Load(),
		Absorbed: j.absorbed.Load(), WrittenOut: j.wroteOut.Load(),
	}
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
	// A copy: big writes become installs below, the caller's ops stay.
	req := &request{ops: slices.Clone(ops), rels: make([]string, len(ops)), done: make(chan result, 1)}
	for i := range req.ops {
		rel, err := j.rel(req.ops[i].path)
		if err != nil {
			return &JournalError{Op: "apply", Err: err}
		}
		req.rels[i] = rel
	}
	for i := range req.ops {
		o := &req.ops[i]
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
			*o = Op{kind: opInstall, path: o.path, src: t.File.Name(), tmp: t} // never held
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
