package safeio

// This file holds the journal's two goroutines: the committer (append,
// flush, apply, cancel) and the checkpointer (syncfs, then delete closed
// segments in order), and the application of an op to the file system.
// journal.go describes the design.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

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
	var outs []*request // WriteOut: answered once the batch is applied
	batch = slices.DeleteFunc(batch, func(r *request) bool {
		if r.writeOut {
			outs = append(outs, r)
		}
		return r.writeOut
	})
	if len(outs) > 0 {
		defer func() {
			var res result
			if err := j.writeOutHeld(); err != nil {
				res.err = &JournalError{Op: "write out", Err: err}
			}
			for _, r := range outs {
				r.done <- res
			}
		}()
	}
	// Append: each request's records, or its failure.
	live := batch[:0:0]
	j.buf = j.buf[:0]
	for _, r := range batch {
		var ferr error
		for _, o := range r.ops {
			if ferr = j.inject(StepWrite, o.path); ferr != nil {
				break
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
	inParallel(len(groups), func(gi int) {
		cancels[gi] = j.applyGroup(live, groups[gi], base, errs)
	})
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

// applyWorkers bounds the goroutines applying one batch, or writing out
// held files.
const applyWorkers = 8

// inParallel runs fn(0..n-1), at most applyWorkers at once, and returns
// when all are done; one call runs in the caller's goroutine.
func inParallel(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, applyWorkers)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// inject is the failure injection before a step on path (JournalOptions.Fail):
// the injected failure, named by step and path, or nil.
func (j *Journal) inject(step Step, path string) error {
	if j.opt.Fail == nil {
		return nil
	}
	if err := j.opt.Fail(step, path); err != nil {
		return fmt.Errorf("%s %s: %w", step, path, err)
	}
	return nil
}

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
				err := j.applyStep(o, r.rels[i])
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
		for _, r := range batch {
			for _, o := range r.ops {
				if err := j.inject(StepSync, o.path); err != nil {
					return err
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

// rotate closes the current segment and hands it to the checkpointer,
// with the files held at this moment, which it writes out before the
// segment goes (journal_held.go). Every other op in it is applied (or the
// journal is broken, and repair keeps the segment current until it is).
func (j *Journal) rotate() {
	if j.seg == nil || j.broken != nil {
		return
	}
	if err := j.seg.Close(); err != nil {
		j.log.Warn("journal: close segment", "segment", j.segPath, "err", err)
	}
	j.ckpt <- closedSegment{path: j.segPath, held: j.heldSnapshot()}
	j.seg, j.segPath = nil, ""
}

// closedSegment is a segment handed to the checkpointer: held lists the
// files held when it closed, some committed in it or before, to write out
// before it goes.
type closedSegment struct {
	path string
	held []heldFile
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
// deletes them, in order: the files held when a segment closed are written
// out first (alongside the commits: callers do not wait for it), then one
// syncfs covers every segment waiting. A segment whose checkpoint fails is
// kept (and so is every later one) and tried again with the next.
func (j *Journal) checkpointer(held []closedSegment) {
	defer close(j.ckptDone)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	try := func() {
		if len(held) == 0 {
			return
		}
		for _, c := range held {
			if err := j.writeOut(c.held); err != nil {
				j.log.Error("journal: cannot write held files out; the segments stay for replay", "segments", len(held), "err", err)
				e := error(&JournalError{Op: "write out", Err: err})
				j.ckptErr.Store(&e)
				return
			}
		}
		if err := j.opt.SyncFS(j.root); err != nil {
			j.log.Error("journal: checkpoint failed; the segments stay for replay", "segments", len(held), "err", err)
			e := error(&JournalError{Op: "checkpoint", Err: err})
			j.ckptErr.Store(&e)
			return
		}
		for len(held) > 0 {
			if err := os.Remove(held[0].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				j.log.Error("journal: cannot delete a checkpointed segment", "segment", held[0].path, "err", err)
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
			closed := !ok
			if ok {
				// Take every segment already waiting: one syncfs for all.
				held, closed = takeWaiting(j.ckpt, append(held, s))
			}
			try()
			if closed {
				return
			}
		case <-retry.C:
			try()
		}
	}
}

// applyStep applies one committed op (failure injection first): a held
// write is kept in memory (journal_held.go), any other op changes the file
// system and then replaces a held write of its path.
func (j *Journal) applyStep(o *Op, rel string) error {
	if o.held {
		// A held write touches nothing at its commit: ask the file system
		// whether its directory takes a write at all (a read-only mount
		// answers EROFS, a missing directory ENOENT), so that it fails now,
		// and is cancelled, as applying it would have.
		dir := filepath.Dir(o.path)
		if err := unix.Access(dir, unix.W_OK); err != nil {
			return &fs.PathError{Op: "access", Path: dir, Err: err}
		}
		if j.hold(o, rel) {
			return nil // StepApply comes when it is written out
		}
	}
	if err := j.inject(StepApply, o.path); err != nil {
		return err
	}
	// The checkpointer may be writing out a held file of this path: one
	// or the other goes first, never both at once (journal_held.go).
	mu := j.held.stripe(rel)
	mu.Lock()
	defer mu.Unlock()
	if err := applyOp(o.kind, o.path, o.src, o.data, o.perm, false); err != nil {
		return err
	}
	j.unhold(rel)
	return nil
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

// takeWaiting appends to held the segments waiting in ch without blocking;
// closed reports that ch was closed.
func takeWaiting(ch <-chan closedSegment, held []closedSegment) (_ []closedSegment, closed bool) {
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				return held, true
			}
			held = append(held, s)
		default:
			return held, false
		}
	}
}
