package safeio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A held write is read through the journal at once, reaches the directory
// only when its segment is checkpointed (here: Close), and a removal that
// comes first means the file never exists at all.
func TestJournalHeldWrites(t *testing.T) {
	root := t.TempDir()
	j, err := OpenJournal(root, JournalOptions{SegmentAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	kept, gone := filepath.Join(root, "kept"), filepath.Join(root, "gone")
	if err := j.Apply(InPlaceOp(kept, []byte("one"), 0o640).Held(), InPlaceOp(gone, []byte("brief"), 0o600).Held()); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{kept: "one", gone: "brief"} {
		if b, err := j.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", filepath.Base(p), b, err, want)
		}
		if got := readOrAbsent(t, p); got != "<absent>" {
			t.Errorf("%s is in the directory before the checkpoint: %q", filepath.Base(p), got)
		}
	}
	v1, ok := j.Version(kept)
	if !ok {
		t.Fatal("no version for a held file")
	}
	if err := j.Apply(InPlaceOp(kept, []byte("two"), 0o640).Held()); err != nil {
		t.Fatal(err)
	}
	if v2, _ := j.Version(kept); v2 == v1 {
		t.Error("a second held write has the version of the first")
	}
	if err := j.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if _, err := j.ReadFile(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile after Remove: %v", err)
	}
	if _, ok := j.Version(gone); ok {
		t.Error("a removed file has a version")
	}
	if st := j.Stats(); st.Absorbed != 2 || st.WrittenOut != 0 {
		t.Errorf("stats %+v: want 2 held writes absorbed (one replaced, one removed), none written out", st)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, kept, "two", 0o640)
	if got := readOrAbsent(t, gone); got != "<absent>" {
		t.Errorf("after Close: gone = %q", got)
	}
	if segs := segmentNames(t, root); len(segs) != 0 {
		t.Errorf("segments after Close: %v", segs)
	}
	assertNoTemps(t, root)
}

// A segment that closes by age writes its held files out before the
// checkpoint deletes it, and WriteOut does so on demand; an op on a
// written-out path is applied to the file as usual.
func TestJournalHeldWrittenOut(t *testing.T) {
	root := t.TempDir()
	j := openJ(t, root, JournalOptions{SegmentAge: 30 * time.Millisecond})
	p := filepath.Join(root, "f")
	if err := j.Apply(InPlaceOp(p, []byte("aged"), 0o600).Held()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the segment's checkpoint", func() bool { return j.Stats().Checkpoints >= 1 })
	if got := readOrAbsent(t, p); got != "aged" {
		t.Fatalf("after the checkpoint: %q", got)
	}
	if st := j.Stats(); st.WrittenOut != 1 {
		t.Errorf("stats %+v, want one written out", st)
	}

	root2 := t.TempDir()
	j2 := openJ(t, root2, JournalOptions{SegmentAge: time.Hour})
	q := filepath.Join(root2, "g")
	// A held WriteOp is written out atomically (temporary file, rename).
	if err := j2.Apply(WriteOp(q, []byte("asked"), 0o640).Held()); err != nil {
		t.Fatal(err)
	}
	if err := j2.WriteOut(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, q, "asked", 0o640)
	assertNoTemps(t, root2)
	if err := j2.Remove(q); err != nil {
		t.Fatal(err)
	}
	if got := readOrAbsent(t, q); got != "<absent>" {
		t.Errorf("after Remove: %q", got)
	}
}

// A held write is durable when Apply returns: a process that dies before
// the checkpoint (the segment left as it is) has it replayed at the next
// Open, and its removal too.
func TestJournalHeldSurvivesCrash(t *testing.T) {
	root := t.TempDir()
	kept, gone := filepath.Join(root, "kept"), filepath.Join(root, "gone")
	// What a committer that died after its flushes would have left.
	writeSegment(t, root, 1, []Op{
		InPlaceOp(kept, []byte("v1"), 0o600).Held(),
		InPlaceOp(gone, []byte("x"), 0o600).Held(),
		InPlaceOp(kept, []byte("v2"), 0o600).Held(),
		RemoveOp(gone),
	})
	j := openJ(t, root, JournalOptions{})
	if got := readOrAbsent(t, kept); got != "v2" {
		t.Errorf("kept after replay = %q", got)
	}
	if got := readOrAbsent(t, gone); got != "<absent>" {
		t.Errorf("gone after replay = %q", got)
	}
	if b, err := j.ReadFile(kept); err != nil || string(b) != "v2" {
		t.Errorf("ReadFile after replay = %q, %v", b, err)
	}
}

// A held file that cannot be written out (a full disk, a read-only
// directory) keeps its segment: the journal refuses ops until it has
// written it, still serves its content, and loses nothing.
func TestJournalHeldWriteOutFailure(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	var fail atomic.Bool
	j := openJ(t, root, JournalOptions{SegmentAge: time.Hour, Fail: func(step Step, path string) error {
		if step == StepApply && path == p && fail.Load() {
			return syscall.ENOSPC
		}
		return nil
	}})
	if err := j.Apply(InPlaceOp(p, []byte("acknowledged"), 0o600).Held()); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if err := j.WriteOut(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteOut = %v, want ENOSPC", err)
	}
	if b, err := j.ReadFile(p); err != nil || string(b) != "acknowledged" {
		t.Fatalf("ReadFile after a failed write-out = %q, %v", b, err)
	}
	// A checkpoint now cannot write it either: the journal breaks.
	if err := j.Close(); err == nil {
		t.Fatal("Close succeeded with a held file it could not write")
	}
	if segs := segmentNames(t, root); len(segs) != 1 {
		t.Fatalf("segments = %v, want the one holding the write", segs)
	}
	fail.Store(false)
	j2 := openJ(t, root, JournalOptions{})
	if got := readOrAbsent(t, p); got != "acknowledged" {
		t.Fatalf("after the next Open: %q", got)
	}
	_ = j2
}

// A held file the checkpointer cannot write out (a read-only directory)
// keeps its segment and every later one, while the journal goes on taking
// ops and serving the file's content; the checkpointer tries again, and
// once it can, the file is written and the segments go.
func TestJournalHeldWriteOutRetried(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	var fail atomic.Bool
	j := openJ(t, root, JournalOptions{SegmentSize: 64, SegmentAge: time.Hour, Fail: func(step Step, path string) error {
		if step == StepApply && path == p && fail.Load() {
			return syscall.EROFS
		}
		return nil
	}})
	fail.Store(true)
	// Over the segment size: the commit rotates, and the write-out fails.
	if err := j.Apply(InPlaceOp(p, make([]byte, 100), 0o600).Held()); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(root, "other")
	for i := range 3 {
		if err := j.WriteFile(other, make([]byte, 100+i), 0o600); err != nil {
			t.Fatalf("op while a write-out fails: %v", err)
		}
	}
	if b, err := j.ReadFile(p); err != nil || len(b) != 100 {
		t.Fatalf("ReadFile while its write-out fails = %d bytes, %v", len(b), err)
	}
	if st := j.Stats(); st.Checkpoints != 0 {
		t.Fatalf("a segment went before its held file was written: %+v", st)
	}
	if segs := segmentNames(t, root); len(segs) < 2 {
		t.Fatalf("segments %v, want every one kept", segs)
	}
	fail.Store(false)
	waitFor(t, "the retried checkpoint", func() bool { return j.Stats().Checkpoints >= 4 })
	if got := readOrAbsent(t, p); len(got) != 100 {
		t.Errorf("held file after the retry: %d bytes", len(got))
	}
	if got := readOrAbsent(t, other); len(got) != 102 {
		t.Errorf("other: %d bytes", len(got))
	}
}

// A removal of a file that the checkpointer is writing out is never undone
// by the write-out: whichever comes second wins, and the file stays
// removed. Each write rotates its segment, so the checkpointer writes the
// file out while its removal is being committed; a pause at every apply
// widens the window in which the two overlap.
func TestJournalHeldWriteOutRacesRemoval(t *testing.T) {
	root := t.TempDir()
	j := openJ(t, root, JournalOptions{SegmentSize: 64, SegmentAge: time.Hour, Fail: func(step Step, path string) error {
		if step == StepApply {
			time.Sleep(200 * time.Microsecond)
		}
		return nil
	}})
	const rounds = 100
	for round := range rounds {
		p := filepath.Join(root, fmt.Sprintf("f%03d", round))
		if err := j.Apply(InPlaceOp(p, make([]byte, 100), 0o600).Held()); err != nil {
			t.Fatal(err)
		}
		if err := j.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range rounds {
		if got := readOrAbsent(t, filepath.Join(root, fmt.Sprintf("f%03d", round))); got != "<absent>" {
			t.Fatalf("f%03d came back after its removal", round)
		}
	}
}

// Beyond MaxHeld a held write is applied at once; every file reads the
// same either way.
func TestJournalHeldBound(t *testing.T) {
	root := t.TempDir()
	j := openJ(t, root, JournalOptions{MaxHeld: 1000, SegmentAge: time.Hour})
	for i := range 30 {
		p := filepath.Join(root, fmt.Sprintf("f%02d", i))
		if err := j.Apply(InPlaceOp(p, []byte(strings.Repeat("b", 99)+fmt.Sprint(i%10)), 0o600).Held()); err != nil {
			t.Fatal(err)
		}
		if n := j.heldBytes(); n > 1000 {
			t.Fatalf("after %d writes %d bytes held, bound 1000", i+1, n)
		}
	}
	onDisk := 0
	for i := range 30 {
		if readOrAbsent(t, filepath.Join(root, fmt.Sprintf("f%02d", i))) != "<absent>" {
			onDisk++
		}
	}
	if onDisk != 20 {
		t.Errorf("%d files on disk, want the 20 over the bound", onDisk)
	}
	if got := readOrAbsent(t, filepath.Join(root, "f29")); got != strings.Repeat("b", 99)+"9" {
		t.Errorf("the newest file, over the bound: %q", got)
	}
	if got := readOrAbsent(t, filepath.Join(root, "f00")); got != "<absent>" {
		t.Errorf("the oldest file, within the bound: %q", got)
	}
	for i := range 30 {
		b, err := j.ReadFile(filepath.Join(root, fmt.Sprintf("f%02d", i)))
		if err != nil || string(b) != strings.Repeat("b", 99)+fmt.Sprint(i%10) {
			t.Fatalf("f%02d = %q, %v", i, b, err)
		}
	}
}

// Held writes of many files: every one is served while held and on disk
// after Close.
func TestJournalHeldMany(t *testing.T) {
	root := t.TempDir()
	j, err := OpenJournal(root, JournalOptions{SegmentSize: 4 << 10, SegmentAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("f%03d", i))
		op := InPlaceOp(p, []byte(fmt.Sprint(i)), 0o600)
		if i%2 == 0 {
			op = WriteOp(p, []byte(fmt.Sprint(i)), 0o600)
		}
		if err := j.Apply(op.Held()); err != nil {
			t.Fatal(err)
		}
		if b, err := j.ReadFile(p); err != nil || string(b) != fmt.Sprint(i) {
			t.Fatalf("ReadFile(f%03d) = %q, %v", i, b, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got := readOrAbsent(t, filepath.Join(root, fmt.Sprintf("f%03d", i))); got != fmt.Sprint(i) {
			t.Fatalf("f%03d = %q", i, got)
		}
	}
	assertNoTemps(t, root)
}

// HeldIn lists the files held directly in one directory, not below it.
func TestJournalHeldIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a", "a/b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	j := openJ(t, root, JournalOptions{SegmentAge: time.Hour})
	if err := j.Apply(
		WriteOp(filepath.Join(root, "a", "one"), []byte("1"), 0o600).Held(),
		WriteOp(filepath.Join(root, "a", "b", "deeper"), []byte("2"), 0o600).Held(),
		WriteOp(filepath.Join(root, "a", "plain"), []byte("3"), 0o600),
	); err != nil {
		t.Fatal(err)
	}
	got := j.HeldIn(filepath.Join(root, "a"))
	if len(got) != 1 || string(got["one"]) != "1" {
		t.Errorf("HeldIn(a) = %q, want only one", got)
	}
	if got := j.HeldIn(filepath.Join(root, "a", "b")); len(got) != 1 || string(got["deeper"]) != "2" {
		t.Errorf("HeldIn(a/b) = %q", got)
	}
	if got := j.HeldIn(t.TempDir()); len(got) != 0 {
		t.Errorf("HeldIn outside the tree = %q", got)
	}
}

// heldBytes is the content the held files keep in memory.
func (j *Journal) heldBytes() int {
	j.held.mu.Lock()
	defer j.held.mu.Unlock()
	return j.held.bytes
}

// wantFile checks that the file p is on disk with content want and mode perm.
func wantFile(t *testing.T, p, want string, perm os.FileMode) {
	t.Helper()
	if got := readOrAbsent(t, p); got != want {
		t.Errorf("%s = %q, want %q", filepath.Base(p), got, want)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != perm {
		t.Errorf("%s: %v %v, want mode %v", filepath.Base(p), fi, err, perm)
	}
}

// A held write whose directory takes no write fails at its commit and is
// cancelled, as applying it would have (a read-only mount answers EROFS;
// here the directory is missing, ENOENT): it is never served, written out
// or replayed.
func TestJournalHeldWriteIntoUnwritableDirectory(t *testing.T) {
	root := t.TempDir()
	j, err := OpenJournal(root, JournalOptions{SegmentAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "missing", "entry")
	if err := j.Apply(WriteOp(p, []byte("mail"), 0o600).Held()); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Apply = %v, want ENOENT from the directory check", err)
	}
	if _, err := j.ReadFile(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile after the failed commit: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "missing"), 0o700); err != nil {
		t.Fatal(err)
	}
	j2, err := OpenJournal(root, JournalOptions{SegmentAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if got := readOrAbsent(t, p); got != "<absent>" {
		t.Errorf("replay brought the cancelled write back: %q", got)
	}
}
