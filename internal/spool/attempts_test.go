package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The begins without an end survive the process (a new Spool on the same
// directory stands for the next start); an ended conversion counts no
// more; counts of entries gone from the spool are pruned at recovery; the
// log is compacted once it grows.
func TestAttemptCountsAcrossRestarts(t *testing.T) {
	state := t.TempDir()
	open := func() *Spool {
		t.Helper()
		s, err := Open(state, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	a := Entry{ID: NewID(time.Now())}
	b := Entry{ID: NewID(time.Now().Add(time.Second))}
	for want := 1; want <= 2; want++ {
		if n, err := s.BeginAttempt(a); err != nil || n != want {
			t.Fatalf("begin %d: got %d, %v", want, n, err)
		}
	}
	if n, _ := s.BeginAttempt(b); n != 1 {
		t.Fatalf("b begins at %d", n)
	}
	s.EndAttempts(b)
	// A crash: nothing is closed.
	s = open()
	if n, err := s.BeginAttempt(a); err != nil || n != 3 {
		t.Fatalf("after a restart a begins its %d. time (%v), want 3", n, err)
	}
	if n, _ := s.BeginAttempt(b); n != 1 {
		t.Fatalf("b, ended before the restart, begins at %d, want 1", n)
	}
	s.EndAttempts(b)
	s.EndAttempts(a)
	if n, _ := s.BeginAttempt(a); n != 1 {
		t.Fatalf("a begins at %d after its end, want 1", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Recovery forgets the count of an entry no longer in the spool.
	s = open()
	if _, _, err := s.Recover(); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.BeginAttempt(a); n != 1 {
		t.Fatalf("a, not in the spool, begins at %d after recovery, want 1", n)
	}
	s.EndAttempts(a)

	// Growth past compactAt rewrites the log with the open counts only.
	c := Entry{ID: NewID(time.Now().Add(2 * time.Second))}
	if _, err := s.BeginAttempt(c); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < compactAt/(2*len("B "+a.ID+"\n"))+10; i++ {
		_, _ = s.BeginAttempt(a)
		s.EndAttempts(a)
	}
	st, err := os.Stat(filepath.Join(state, spoolDirName, attemptsLogName))
	if err != nil || st.Size() > compactAt {
		t.Fatalf("log %v, %v: not compacted", st, err)
	}
	s = open()
	if n, _ := s.BeginAttempt(c); n != 2 {
		t.Fatalf("c begins at %d after compaction and a restart, want 2", n)
	}
}

// A torn or damaged line costs a count, never the log.
func TestAttemptLogDamage(t *testing.T) {
	state := t.TempDir()
	s, err := Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := NewID(time.Now())
	log := "B " + id + "\nB ../etc/passwd\nX junk\nB " + id + "\nB " + id[:5]
	if err := os.WriteFile(filepath.Join(state, spoolDirName, attemptsLogName), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := s.BeginAttempt(Entry{ID: id}); err != nil || n != 3 {
		t.Fatalf("got %d, %v; want 3", n, err)
	}
	b, _ := os.ReadFile(filepath.Join(state, spoolDirName, attemptsLogName))
	if !strings.HasSuffix(string(b), "\nB "+id+"\n") || strings.Count(string(b), "\n") != 6 {
		t.Errorf("the begin was not appended on a line of its own:\n%q", b)
	}
	s, err = Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.BeginAttempt(Entry{ID: id}); err != nil || n != 4 {
		t.Fatalf("after a restart: got %d, %v; want 4", n, err)
	}
}
