package safeio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// openJ opens a journal on root with opt, closed at the end of the test.
func openJ(t *testing.T, root string, opt JournalOptions) *Journal {
	t.Helper()
	j, err := OpenJournal(root, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func readOrAbsent(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func segmentNames(t *testing.T, root string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(root, JournalDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// writeSegment writes a segment file by hand, as a committer that died
// right after its fdatasync would have left it.
func writeSegment(t *testing.T, root string, seq uint64, ops []Op) string {
	t.Helper()
	j := &Journal{root: root}
	b := []byte(segMagic)
	for i := range ops {
		rel, err := j.rel(ops[i].path)
		if err != nil {
			t.Fatal(err)
		}
		b = appendRecord(b, &ops[i], rel)
	}
	if err := os.MkdirAll(filepath.Join(root, JournalDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, JournalDirName, fmt.Sprintf("%016x%s", seq, segExt))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Concurrent writers share flushes: N writers waiting on a slow disk cost
// far fewer than N fdatasyncs, and every one of them is applied.
func TestJournalGroupCommit(t *testing.T) {
	root := t.TempDir()
	var syncs atomic.Int64
	j := openJ(t, root, JournalOptions{Sync: func(f *os.File) error {
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond) // a disk flush
		return fdatasync(f)
	}})
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- j.WriteFile(filepath.Join(root, fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint(i)), 0o600)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if got := readOrAbsent(t, filepath.Join(root, fmt.Sprintf("f%02d", i))); got != fmt.Sprint(i) {
			t.Fatalf("f%02d = %q", i, got)
		}
	}
	if s := syncs.Load(); s > n/4 {
		t.Errorf("%d writers cost %d fdatasyncs, want at most %d (group commit)", n, s, n/4)
	}
	if st := j.Stats(); st.Ops != n || st.Commits != uint64(syncs.Load()) {
		t.Errorf("stats %+v, want %d ops and %d commits", st, n, syncs.Load())
	}
	assertNoTemps(t, root)
}

// Ops on one path keep their order, within one Apply and across calls, and
// so does their replay.
func TestJournalSamePathOrder(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	j := openJ(t, root, JournalOptions{})
	if err := j.Apply(WriteOp(a, []byte("1"), 0o600), WriteOp(a, []byte("2"), 0o644), RemoveOp(b), WriteOp(b, []byte("3"), 0o600)); err != nil {
		t.Fatal(err)
	}
	if err := j.Remove(a); err != nil {
		t.Fatal(err)
	}
	if err := j.WriteFile(a, []byte("4"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := readOrAbsent(t, a) + readOrAbsent(t, b); got != "43" {
		t.Fatalf("a+b = %q, want 43", got)
	}
	if st, _ := os.Stat(a); st.Mode().Perm() != 0o640 {
		t.Errorf("mode of a %v, want 0640", st.Mode())
	}
	// Replay of the same ops over a tree that holds none of them.
	root2 := t.TempDir()
	a2, b2 := filepath.Join(root2, "a"), filepath.Join(root2, "b")
	writeSegment(t, root2, 1, []Op{WriteOp(a2, []byte("1"), 0o600), WriteOp(b2, []byte("3"), 0o600), RemoveOp(a2)})
	writeSegment(t, root2, 2, []Op{WriteOp(a2, []byte("4"), 0o600), RemoveOp(b2), WriteOp(b2, []byte("5"), 0o600)})
	openJ(t, root2, JournalOptions{})
	if got := readOrAbsent(t, a2) + readOrAbsent(t, b2); got != "45" {
		t.Fatalf("after replay a+b = %q, want 45", got)
	}
	waitFor(t, "the replayed segments' checkpoint", func() bool { return len(segmentNames(t, root2)) == 0 })
}

// A crash at every point of an op: before its commit it is absent after
// the restart, after its commit it is present (whether applied or not), a
// torn tail is cut off and the ops before it are kept.
func TestJournalCrashPoints(t *testing.T) {
	t.Run("before commit", func(t *testing.T) {
		root := t.TempDir()
		p := filepath.Join(root, "f")
		if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, step := range []Step{StepWrite, StepSync} {
			boom := errors.New("injected")
			j := openJ(t, root, JournalOptions{Fail: func(s Step, path string) error {
				if s == step && path == p {
					return boom
				}
				return nil
			}})
			err := j.WriteFile(p, []byte("new"), 0o600)
			var je *JournalError
			if !errors.Is(err, boom) || !errors.As(err, &je) || !je.Temporary() {
				t.Fatalf("%s: err = %v, want the injected failure as a temporary JournalError", step, err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			openJ(t, root, JournalOptions{}).Close()
			if got := readOrAbsent(t, p); got != "old" {
				t.Fatalf("%s: after restart %q, want old", step, got)
			}
		}
	})
	t.Run("after commit before apply", func(t *testing.T) {
		root := t.TempDir()
		p, q, big := filepath.Join(root, "f"), filepath.Join(root, "g"), filepath.Join(root, "big")
		if err := os.WriteFile(q, []byte("doomed"), 0o600); err != nil {
			t.Fatal(err)
		}
		// An install whose temporary file was written and fsynced before
		// its record committed.
		tmp := filepath.Join(root, TempPrefix+"big-x")
		if err := os.WriteFile(tmp, []byte("large"), 0o600); err != nil {
			t.Fatal(err)
		}
		writeSegment(t, root, 7, []Op{WriteOp(p, []byte("new"), 0o600), RemoveOp(q), {kind: opInstall, path: big, src: tmp}})
		j := openJ(t, root, JournalOptions{})
		if got := readOrAbsent(t, p) + "," + readOrAbsent(t, q) + "," + readOrAbsent(t, big); got != "new,<absent>,large" {
			t.Fatalf("after replay: %s", got)
		}
		if st := j.Stats(); st.Replayed != 3 {
			t.Errorf("replayed %d ops, want 3", st.Replayed)
		}
		// The next segment continues the numbering.
		if err := j.WriteFile(p, []byte("newer"), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the replayed segment's checkpoint", func() bool {
			return slices.Equal(segmentNames(t, root), []string{"0000000000000008.seg"})
		})
	})
	t.Run("after apply", func(t *testing.T) {
		// Replay is idempotent: ops applied before the crash are applied
		// again, an install whose temporary file is gone was done.
		root := t.TempDir()
		p, big := filepath.Join(root, "f"), filepath.Join(root, "big")
		for _, f := range []string{p, big} {
			if err := os.WriteFile(f, []byte("v"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		writeSegment(t, root, 1, []Op{WriteOp(p, []byte("v"), 0o600), {kind: opInstall, path: big, src: filepath.Join(root, TempPrefix+"gone")}})
		openJ(t, root, JournalOptions{})
		if got := readOrAbsent(t, p) + readOrAbsent(t, big); got != "vv" {
			t.Fatalf("after replay %q", got)
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		root := t.TempDir()
		p, q := filepath.Join(root, "f"), filepath.Join(root, "g")
		seg := writeSegment(t, root, 1, []Op{WriteOp(p, []byte("kept"), 0o600), WriteOp(q, []byte("torn"), 0o600)})
		b, _ := os.ReadFile(seg)
		for cut := 1; cut < 12; cut++ {
			if err := os.WriteFile(seg, b[:len(b)-cut], 0o600); err != nil {
				t.Fatal(err)
			}
			_ = os.Remove(p)
			openJ(t, root, JournalOptions{}).Close()
			if got := readOrAbsent(t, p) + "," + readOrAbsent(t, q); got != "kept,<absent>" {
				t.Fatalf("cut %d: %s", cut, got)
			}
		}
		// A flipped bit in the last record is a torn tail too.
		b[len(b)-1] ^= 1
		if err := os.WriteFile(seg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		openJ(t, root, JournalOptions{}).Close()
		if got := readOrAbsent(t, q); got != "<absent>" {
			t.Fatalf("damaged record applied: %s", got)
		}
	})
}

// A failed commit fails every op of its batch (temporary, with the cause),
// leaves none of them behind, and the journal goes on in a new segment.
func TestJournalCommitErrorFailsBatch(t *testing.T) {
	root := t.TempDir()
	release := make(chan struct{})
	var calls atomic.Int64
	j := openJ(t, root, JournalOptions{SegmentAge: time.Hour, Sync: func(f *os.File) error {
		switch calls.Add(1) {
		case 1:
			<-release // hold the first commit while a batch gathers
		case 2:
			return syscall.EIO
		}
		return fdatasync(f)
	}})
	first := make(chan error, 1)
	go func() { first <- j.WriteFile(filepath.Join(root, "first"), []byte("1"), 0o600) }()
	waitFor(t, "the first commit", func() bool { return calls.Load() == 1 })
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- j.WriteFile(filepath.Join(root, fmt.Sprintf("b%d", i)), []byte("x"), 0o600) }()
	}
	waitFor(t, "the batch to gather", func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		return len(j.pending) == n
	})
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range n {
		err := <-errs
		var je *JournalError
		if !errors.Is(err, syscall.EIO) || !errors.As(err, &je) || !je.Temporary() {
			t.Fatalf("op of the failed batch: %v, want a temporary error wrapping EIO", err)
		}
	}
	if calls.Load() != 3 {
		t.Errorf("%d flushes, want 3 (one per batch, one for the segment cut back)", calls.Load())
	}
	for i := range n {
		if got := readOrAbsent(t, filepath.Join(root, fmt.Sprintf("b%d", i))); got != "<absent>" {
			t.Fatalf("b%d of the failed batch was applied: %q", i, got)
		}
	}
	if err := j.WriteFile(filepath.Join(root, "after"), []byte("a"), 0o600); err != nil {
		t.Fatalf("write after a failed commit: %v", err)
	}
	// The failed batch is not in any segment: a crash now (a second
	// journal replays what the first left) brings none of it back.
	j2, err := OpenJournal(root, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	for i := range n {
		if got := readOrAbsent(t, filepath.Join(root, fmt.Sprintf("b%d", i))); got != "<absent>" {
			t.Fatalf("b%d came back at replay: %q", i, got)
		}
	}
	if readOrAbsent(t, filepath.Join(root, "first"))+readOrAbsent(t, filepath.Join(root, "after")) != "1a" {
		t.Fatal("acknowledged writes lost")
	}
}

// An op that is committed but cannot be applied (a full disk creating the
// file, a read-only directory) fails and is cancelled: it never takes effect,
// nor do the call's later ops; the call's earlier ops stay, and the
// journal goes on.
func TestJournalApplyFailureCancels(t *testing.T) {
	root := t.TempDir()
	p, q, r := filepath.Join(root, "p"), filepath.Join(root, "q"), filepath.Join(root, "r")
	var full atomic.Bool
	full.Store(true)
	j := openJ(t, root, JournalOptions{SegmentAge: time.Hour, Fail: func(s Step, path string) error {
		if s == StepApply && path == p && full.Load() {
			return syscall.ENOSPC
		}
		return nil
	}})
	err := j.Apply(WriteOp(q, []byte("q"), 0o600), WriteOp(p, []byte("p"), 0o600), WriteOp(r, []byte("r"), 0o600))
	var je *JournalError
	if !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &je) || !je.Temporary() {
		t.Fatalf("apply on a full disk: %v, want a temporary error with ENOSPC", err)
	}
	if got := readOrAbsent(t, q) + "," + readOrAbsent(t, p) + "," + readOrAbsent(t, r); got != "q,<absent>,<absent>" {
		t.Fatalf("after the failure: %s", got)
	}
	if err := j.WriteFile(filepath.Join(root, "other"), []byte("o"), 0o600); err != nil {
		t.Fatalf("the journal stopped after a cancelled op: %v", err)
	}
	// A crash now: replay skips the cancelled ops.
	openJ(t, root, JournalOptions{})
	if got := readOrAbsent(t, q) + "," + readOrAbsent(t, p) + "," + readOrAbsent(t, r) + "," + readOrAbsent(t, filepath.Join(root, "other")); got != "q,<absent>,<absent>,o" {
		t.Fatalf("after replay: %s", got)
	}
}

// If even the cancel record cannot be committed, the journal refuses ops
// until it has applied the failed op from its segment (its caller, told of
// a failure, then sees it: never the reverse), or the next Open does.
func TestJournalBrokenRepairs(t *testing.T) {
	for _, crash := range []bool{false, true} {
		root := t.TempDir()
		p, q := filepath.Join(root, "p"), filepath.Join(root, "q")
		var full atomic.Bool
		full.Store(true)
		var syncs atomic.Int64
		j := openJ(t, root, JournalOptions{SegmentAge: time.Hour,
			Fail: func(s Step, path string) error {
				if s == StepApply && full.Load() {
					return syscall.ENOSPC
				}
				return nil
			},
			Sync: func(f *os.File) error {
				if syncs.Add(1) == 2 { // the cancel record's flush
					return syscall.EIO
				}
				return fdatasync(f)
			}})
		if err := j.WriteFile(p, []byte("committed"), 0o600); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write on a full disk: %v, want ENOSPC", err)
		}
		if err := j.WriteFile(q, []byte("q"), 0o600); err == nil || !strings.Contains(err.Error(), "earlier op") {
			t.Fatalf("write while broken: %v, want the journal's refusal", err)
		}
		full.Store(false)
		if crash {
			openJ(t, root, JournalOptions{}) // the first one never closes
			if got := readOrAbsent(t, p); got != "committed" {
				t.Fatalf("after restart: %q", got)
			}
			continue
		}
		waitFor(t, "the journal to repair itself", func() bool { return j.WriteFile(q, []byte("q"), 0o600) == nil })
		if got := readOrAbsent(t, p) + readOrAbsent(t, q); got != "committedq" {
			t.Fatalf("after repair: %q", got)
		}
	}
}

// Checkpoints: a full or old segment is made durable with one syncfs and
// deleted; Close leaves no segment.
func TestJournalCheckpoint(t *testing.T) {
	root := t.TempDir()
	var syncfs atomic.Int64
	j := openJ(t, root, JournalOptions{SegmentSize: 256, SegmentAge: time.Hour, SyncFS: func(dir string) error {
		syncfs.Add(1)
		return syncFS(dir)
	}})
	for i := range 20 {
		if err := j.WriteFile(filepath.Join(root, "f"), []byte(strings.Repeat("x", 100)+fmt.Sprint(i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "checkpoints", func() bool { return j.Stats().Checkpoints >= 5 })
	if syncfs.Load() == 0 {
		t.Error("checkpoints without syncfs")
	}
	if segs := segmentNames(t, root); len(segs) > 2 {
		t.Errorf("segments pile up: %v", segs)
	}
	// By age.
	root2 := t.TempDir()
	j2 := openJ(t, root2, JournalOptions{SegmentAge: 20 * time.Millisecond})
	if err := j2.WriteFile(filepath.Join(root2, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old segment to go", func() bool { return len(segmentNames(t, root2)) == 0 })
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if segs := segmentNames(t, root); len(segs) != 0 {
		t.Errorf("segments after Close: %v", segs)
	}
	if err := j.WriteFile(filepath.Join(root, "f"), nil, 0o600); !errors.Is(err, ErrJournalClosed) {
		t.Errorf("write after Close: %v", err)
	}
}

// A failed checkpoint keeps its segment (and every later one) for replay.
func TestJournalCheckpointFailureKeepsSegments(t *testing.T) {
	root := t.TempDir()
	var broken atomic.Bool
	broken.Store(true)
	j, err := OpenJournal(root, JournalOptions{SegmentSize: 64, SegmentAge: time.Hour, SyncFS: func(dir string) error {
		if broken.Load() {
			return syscall.EIO
		}
		return syncFS(dir)
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := j.WriteFile(filepath.Join(root, "f"), []byte(strings.Repeat("y", 80)+fmt.Sprint(i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close = %v, want the checkpoint's EIO", err)
	}
	if segs := segmentNames(t, root); len(segs) != 3 {
		t.Fatalf("segments after failed checkpoints: %v, want all 3", segs)
	}
	_ = os.Remove(filepath.Join(root, "f"))
	broken.Store(false)
	openJ(t, root, JournalOptions{})
	if got := readOrAbsent(t, filepath.Join(root, "f")); got != strings.Repeat("y", 80)+"2" {
		t.Fatalf("after replay: %q", got)
	}
}

// Content over MaxJournaled is written the direct way; only its install is
// journaled, and the result is the same.
func TestJournalLargeWrites(t *testing.T) {
	root := t.TempDir()
	j := openJ(t, root, JournalOptions{MaxJournaled: 1024, SegmentAge: time.Hour})
	p := filepath.Join(root, "big")
	big := strings.Repeat("z", 4096)
	if err := j.Apply(WriteOp(p, []byte(big), 0o644), WriteOp(filepath.Join(root, "small"), []byte("s"), 0o600)); err != nil {
		t.Fatal(err)
	}
	if got := readOrAbsent(t, p); got != big {
		t.Fatalf("big file: %d bytes", len(got))
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	segs := segmentNames(t, root)
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	if st, _ := os.Stat(filepath.Join(root, JournalDirName, segs[0])); st.Size() > 512 {
		t.Errorf("segment holds %d bytes: the big content went into the journal", st.Size())
	}
	// A streamed Temp, committed through the journal.
	tp, err := Create(filepath.Join(root, "streamed"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if err := j.Commit(tp); err != nil {
		t.Fatal(err)
	}
	tp.Abort() // a no-op after Commit
	if got := readOrAbsent(t, filepath.Join(root, "streamed")); got != big {
		t.Fatalf("streamed file: %d bytes", len(got))
	}
	// A failed commit leaves neither the file nor its temporary file.
	failing := openJ(t, t.TempDir(), JournalOptions{MaxJournaled: 10, Fail: func(s Step, _ string) error {
		if s == StepSync {
			return syscall.EIO
		}
		return nil
	}})
	fp := filepath.Join(failing.Root(), "big")
	if err := failing.WriteFile(fp, []byte(big), 0o600); !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v", err)
	}
	if got := readOrAbsent(t, fp); got != "<absent>" {
		t.Fatal("failed big write left its file")
	}
	assertNoTemps(t, failing.Root())
	assertNoTemps(t, root)
}

func TestJournalRefusesPathsOutsideItsTree(t *testing.T) {
	root := t.TempDir()
	j := openJ(t, root, JournalOptions{})
	for _, p := range []string{filepath.Join(root, ".."), filepath.Join(t.TempDir(), "x"), root, filepath.Join(root, JournalDirName, "x")} {
		if err := j.WriteFile(p, []byte("x"), 0o600); err == nil {
			t.Errorf("write to %s accepted", p)
		}
	}
}

// FuzzDecodeSegment: the reader never panics, never reads past a bad
// record, and what it accepts encodes back to exactly the prefix it read.
func FuzzDecodeSegment(f *testing.F) {
	j := &Journal{root: "/r"}
	seg := []byte(segMagic)
	for _, o := range []Op{WriteOp("/r/a/b", []byte("data"), 0o640), InPlaceOp("/r/e", []byte("x"), 0o600), RemoveOp("/r/c"), {kind: opInstall, path: "/r/a/d", src: "/r/a/.tmp-d-1"}} {
		rel, _ := j.rel(o.path)
		seg = appendRecord(seg, &o, rel)
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(appendCancel(slices.Clone(seg), []int64{int64(len(segMagic))}))
	f.Add([]byte(segMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, good, err := decodeSegment(b)
		if good > len(b) || (err == nil && good != len(b)) {
			t.Fatalf("good %d of %d, err %v", good, len(b), err)
		}
		if good == 0 {
			return
		}
		out := []byte(segMagic)
		for _, r := range recs {
			if r.kind == opCancel {
				out = appendCancel(out, r.cancel)
				continue
			}
			o := Op{kind: r.kind, data: r.data, perm: r.perm, src: r.src}
			out = appendRecord(out, &o, r.rel)
		}
		if string(out) != string(b[:good]) {
			t.Fatalf("re-encoded records differ from the prefix read")
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Requests of one batch that share a path are applied in journal order,
// the others in parallel.
func TestJournalBatchOrderSamePath(t *testing.T) {
	root := t.TempDir()
	release := make(chan struct{})
	var calls atomic.Int64
	j := openJ(t, root, JournalOptions{SegmentAge: time.Hour, Sync: func(f *os.File) error {
		if calls.Add(1) == 1 {
			<-release
		}
		return fdatasync(f)
	}})
	x := filepath.Join(root, "x")
	go func() { _ = j.WriteFile(filepath.Join(root, "first"), nil, 0o600) }()
	waitFor(t, "the first commit", func() bool { return calls.Load() == 1 })
	errs := make(chan error, 20)
	for i := range 10 {
		go func() {
			errs <- j.Apply(WriteOp(x, []byte(fmt.Sprint(i)), 0o600), WriteOp(filepath.Join(root, fmt.Sprint("y", i)), nil, 0o600))
		}()
		go func() { errs <- j.WriteFile(filepath.Join(root, fmt.Sprint("z", i)), []byte("z"), 0o600) }()
		waitFor(t, "the request to queue", func() bool {
			j.mu.Lock()
			defer j.mu.Unlock()
			return len(j.pending) == 2*(i+1)
		})
	}
	close(release)
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := readOrAbsent(t, x); got != "9" {
		t.Fatalf("x = %q, want the last write's 9", got)
	}
	if calls.Load() != 2 {
		t.Errorf("%d flushes, want 2", calls.Load())
	}
}

func TestConflictGroups(t *testing.T) {
	req := func(paths ...string) *request {
		r := &request{}
		for _, p := range paths {
			r.ops = append(r.ops, RemoveOp(p))
		}
		return r
	}
	for _, tc := range []struct {
		name string
		reqs []*request
		want [][]int
	}{
		{"independent", []*request{req("a"), req("b"), req("c")}, [][]int{{0}, {1}, {2}}},
		{"shared", []*request{req("a"), req("b"), req("a")}, [][]int{{0, 2}, {1}}},
		{"chained", []*request{req("a", "b"), req("c"), req("b", "d"), req("d"), req("e")}, [][]int{{0, 2, 3}, {1}, {4}}},
		{"joined late", []*request{req("a"), req("b"), req("a", "b")}, [][]int{{0, 1, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := conflictGroups(tc.reqs)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("groups %v, want %v", got, tc.want)
			}
		})
	}
}

// In-place writes replace the content exactly (shorter, longer, another
// mode) without a new file, and replay like any write.
func TestJournalInPlace(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "rec")
	j := openJ(t, root, JournalOptions{SegmentAge: time.Hour})
	var ino uint64
	for i, c := range []string{"a long first content", "short", "", "longer than the short one"} {
		if err := j.Apply(InPlaceOp(p, []byte(c), 0o600)); err != nil {
			t.Fatal(err)
		}
		if got := readOrAbsent(t, p); got != c {
			t.Fatalf("write %d: %q, want %q", i, got, c)
		}
		st, _ := os.Stat(p)
		n := st.Sys().(*syscall.Stat_t).Ino
		if i > 0 && n != ino {
			t.Errorf("write %d made a new file", i)
		}
		ino = n
	}
	if err := j.Apply(InPlaceOp(p, []byte("mode"), 0o640)); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode())
	}
	// Replay over a torn overwrite restores the whole content.
	root2 := t.TempDir()
	p2 := filepath.Join(root2, "rec")
	if err := os.WriteFile(p2, []byte("half-writ"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeSegment(t, root2, 1, []Op{InPlaceOp(p2, []byte("whole record"), 0o600)})
	openJ(t, root2, JournalOptions{})
	if got := readOrAbsent(t, p2); got != "whole record" {
		t.Fatalf("after replay %q", got)
	}
}
