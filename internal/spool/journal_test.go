package spool

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"herald/internal/safeio"
)

// journaled opens the spool of state with a journal; a test that "crashes"
// simply opens another one on the same state (the first one is never
// closed, and its segments never age out during the test).
func journaled(t *testing.T, state string, opt safeio.JournalOptions) *Spool {
	t.Helper()
	s, err := Open(state, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if opt.SegmentAge == 0 {
		opt.SegmentAge = time.Hour
	}
	if err := s.OpenJournal(opt); err != nil {
		t.Fatal(err)
	}
	return s
}

// Entries of every size go through the journal (the big ones spilled to a
// temporary file first), read back whole, and a crash after the
// acknowledgement keeps them; removals stay removed.
func TestJournaledSubmitAndRemove(t *testing.T) {
	state := t.TempDir()
	s := journaled(t, state, safeio.JournalOptions{})
	sizes := []int{0, 1024, safeio.DefaultMaxJournaled - 400, safeio.DefaultMaxJournaled + 1, 3 << 20}
	ids := map[string]string{}
	for i, n := range sizes {
		body := strings.Repeat(string(rune('a'+i)), n)
		id, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader(body), 0)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		ids[id] = body
	}
	check := func(s *Spool, want map[string]string) {
		t.Helper()
		es, err := s.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != len(want) {
			t.Fatalf("%d entries pending, want %d", len(es), len(want))
		}
		// The entries the journal holds are listed from memory; written
		// out, they are files of their own with the entry's mode.
		if err := s.writeOut(); err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			got, err := s.ReadAll(e)
			if err != nil || string(got) != want[e.ID] || e.Size != int64(len(want[e.ID])) {
				t.Fatalf("entry %s: %d bytes (size %d), want %d, %v", e.ID, len(got), e.Size, len(want[e.ID]), err)
			}
			if st, _ := os.Stat(e.path); st.Mode().Perm() != 0o600 {
				t.Errorf("entry %s mode %v", e.ID, st.Mode())
			}
		}
		for _, n := range dirNames(t, s.incoming) {
			if strings.HasPrefix(n, safeio.TempPrefix) {
				t.Errorf("temporary file left: %s", n)
			}
		}
	}
	check(s, ids)
	es, _ := s.Pending()
	if err := s.Remove(es[0]); err != nil {
		t.Fatal(err)
	}
	delete(ids, es[0].ID)
	check(s, ids)
	s2 := journaled(t, state, safeio.JournalOptions{})
	if _, q, err := s2.Recover(); err != nil || q != 0 {
		t.Fatalf("Recover: %d quarantined, %v", q, err)
	}
	check(s2, ids)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := os.ReadDir(filepath.Join(state, spoolDirName, safeio.JournalDirName)); len(segs) != 0 {
		t.Errorf("segments after Close: %d", len(segs))
	}
}

// The submitter's errors stay what they are and leave nothing behind, in
// memory and spilled alike.
func TestJournaledSubmitLimits(t *testing.T) {
	state := t.TempDir()
	s := journaled(t, state, safeio.JournalOptions{})
	for _, tc := range []struct {
		name string
		body func() *strings.Reader
		max  int64
	}{
		{"small over the limit", func() *strings.Reader { return strings.NewReader(strings.Repeat("x", 2000)) }, 1000},
		{"big over the limit", func() *strings.Reader { return strings.NewReader(strings.Repeat("x", 1<<20)) }, 600 << 10},
	} {
		if _, err := s.Submit(mailEnv("a@b", "root"), tc.body(), tc.max); !errors.Is(err, ErrTooLarge) || IsTemporary(err) {
			t.Errorf("%s: %v, want ErrTooLarge", tc.name, err)
		}
	}
	for _, n := range []int{10, 1 << 20} {
		_, err := s.Submit(mailEnv("a@b", "root"), &failingReader{n: n}, 0)
		var be *BodyError
		if !errors.As(err, &be) {
			t.Errorf("reader failing after %d bytes: %v, want a BodyError", n, err)
		}
	}
	if names := dirNames(t, s.incoming); len(names) != 0 {
		t.Fatalf("left in incoming: %v", names)
	}
}

// A failed commit is a temporary error and leaves no entry, now or after a
// restart.
func TestJournaledCommitFailure(t *testing.T) {
	state := t.TempDir()
	s := journaled(t, state, safeio.JournalOptions{Fail: func(step safeio.Step, _ string) error {
		if step == safeio.StepSync {
			return syscall.EIO
		}
		return nil
	}})
	for _, n := range []int{100, 1 << 20} {
		if _, err := s.Submit(mailEnv("a@b", "root"), strings.NewReader(strings.Repeat("z", n)), 0); !IsTemporary(err) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("%d bytes: %v, want a temporary error with EIO", n, err)
		}
	}
	// Stopped before the restart: a failed flush starts a new segment and
	// the checkpointer then deletes the failed one, which a second journal
	// replaying the same directory meanwhile would find gone. (A real
	// restart follows the process's end; the spool's owner is alone.)
	_ = s.Close()
	s2 := journaled(t, state, safeio.JournalOptions{})
	if es, err := s2.Pending(); err != nil || len(es) != 0 {
		t.Fatalf("after restart: %d entries, %v", len(es), err)
	}
	if names := dirNames(t, s2.incoming); len(names) != 0 {
		t.Fatalf("left in incoming: %v", names)
	}
}

// A quarantined entry is not brought back by the journal after a crash.
func TestJournaledQuarantineStaysAside(t *testing.T) {
	state := t.TempDir()
	s := journaled(t, state, safeio.JournalOptions{})
	if _, err := s.Submit(mailEnv("a@b", "root"), strings.NewReader("hello"), 0); err != nil {
		t.Fatal(err)
	}
	es, _ := s.Pending()
	if err := s.Quarantine(es[0], errors.New("set aside")); err != nil {
		t.Fatal(err)
	}
	s2 := journaled(t, state, safeio.JournalOptions{})
	if es, _ := s2.Pending(); len(es) != 0 {
		t.Fatalf("quarantined entry back after a crash: %v", es)
	}
	if q := dirNames(t, s2.quarantine); len(q) != 1 {
		t.Fatalf("quarantine holds %v", q)
	}
}

// Concurrent submissions (SMTP sessions) share the journal's flushes.
func TestJournaledSubmitsShareCommits(t *testing.T) {
	state := t.TempDir()
	var syncs atomic.Int64
	s := journaled(t, state, safeio.JournalOptions{Sync: func(f *os.File) error {
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond)
		return f.Sync()
	}})
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Submit(mailEnv("a@b", "root"), strings.NewReader(fmt.Sprint("mail ", i)), 0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if es, _ := s.Pending(); len(es) != n {
		t.Fatalf("%d entries, want %d", len(es), n)
	}
	if got := syncs.Load(); got > n/4 {
		t.Errorf("%d submissions cost %d flushes, want at most %d", n, got, n/4)
	}
}

// An entry the journal holds is listed from memory, envelope and message,
// and one removed before the journal's checkpoint never becomes a file in
// incoming/.
func TestHeldEntriesListedWithoutFiles(t *testing.T) {
	state := t.TempDir()
	s := journaled(t, state, safeio.JournalOptions{SegmentAge: time.Hour})
	id, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader("Subject: held\n\nbody\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, s.incoming); len(names) != 0 {
		t.Fatalf("incoming/ holds %v before any checkpoint", names)
	}
	es, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].ID != id || es[0].Env.From != "root@h" || es[0].Env.UID != s.uid {
		t.Fatalf("Pending = %+v, want the held entry %s", es, id)
	}
	if d := es[0].data; cap(d) > len(d)+len(d)/4+64 { // a size class, not the read buffer
		t.Errorf("the held entry keeps a buffer of %d bytes for its %d", cap(d), len(d))
	}
	got, err := s.ReadAll(es[0])
	if err != nil || string(got) != "Subject: held\n\nbody\n" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if names := dirNames(t, s.incoming); len(names) != 0 {
		t.Fatalf("listing wrote %v", names)
	}
	if err := s.Remove(es[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, s.incoming); len(names) != 0 {
		t.Fatalf("incoming/ after Close holds %v, want nothing: the entry was removed while held", names)
	}
}
