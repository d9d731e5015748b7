package spool

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"herald/internal/safeio"
)

// A journaled entry is handed out from memory exactly as the listing would
// give it (envelope, size, message), once, and not after it was removed.
func TestFreshEntriesMatchTheListing(t *testing.T) {
	s := journaled(t, t.TempDir(), safeio.JournalOptions{})
	var ids []string
	for _, body := range []string{"Subject: one\n\nfirst\n", "", "Subject: three\n\n" + strings.Repeat("x", 100<<10)} {
		id, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader(body), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	fresh, complete := s.TakeFresh(nil)
	if !complete {
		t.Fatal("journaled entries only, yet the list is incomplete")
	}
	listed, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != len(ids) || len(listed) != len(ids) {
		t.Fatalf("%d fresh, %d listed, want %d", len(fresh), len(listed), len(ids))
	}
	for i, f := range fresh {
		l := listed[i]
		if f.ID != ids[i] || f.ID != l.ID || f.Size != l.Size || f.off != l.off || f.path != l.path || !reflect.DeepEqual(f.Env, l.Env) {
			t.Errorf("fresh %+v\nlisted %+v", f, l)
		}
		a, err1 := s.ReadAll(f)
		b, err2 := s.ReadAll(l)
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("entry %s: fresh %q (%v), listed %q (%v)", f.ID, a, err1, b, err2)
		}
		r, err := s.Read(f)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(a)+1)
		n, _ := r.Read(buf)
		r.Close()
		if string(buf[:n]) != string(a[:min(len(a), n)]) {
			t.Errorf("Read of %s differs from ReadAll", f.ID)
		}
	}
	if again, complete := s.TakeFresh(nil); len(again) != 0 || !complete {
		t.Errorf("taken twice: %d entries, complete %v", len(again), complete)
	}

	// Skipped and removed entries are left out.
	id4, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader("four"), 0)
	if err != nil {
		t.Fatal(err)
	}
	id5, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader("five"), 0)
	if err != nil {
		t.Fatal(err)
	}
	id6, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader("six"), 0)
	if err != nil {
		t.Fatal(err)
	}
	listed, _ = s.Pending()
	for _, e := range listed {
		if e.ID == id5 {
			if err := s.Remove(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	fresh, complete = s.TakeFresh(func(id string) bool { return id == id4 })
	if !complete || len(fresh) != 1 || fresh[0].ID != id6 {
		t.Errorf("after skipping %s and removing %s: %+v, complete %v; want %s alone", id4, id5, fresh, complete, id6)
	}
}

// What the daemon did not commit itself through the journal makes the list
// incomplete: an entry too big for the journal, a maildrop file, a file
// someone else put into incoming/, more than the list keeps. The daemon's
// own entries, seen by inotify, do not.
func TestFreshListKnowsWhatItMissed(t *testing.T) {
	state := t.TempDir()
	s := journaled(t, state, safeio.JournalOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	drain := func() {
		for {
			select {
			case <-wake:
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	}
	drain()
	s.TakeFresh(nil)

	// The daemon's own: inotify sees them, the list stays complete.
	for range 5 {
		if _, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader("own"), 0); err != nil {
			t.Fatal(err)
		}
	}
	drain() // inotify's events have been read
	if fresh, complete := s.TakeFresh(nil); !complete || len(fresh) != 5 {
		t.Fatalf("own entries: %d, complete %v", len(fresh), complete)
	}

	incomplete := func(what string, do func()) {
		t.Helper()
		s.TakeFresh(nil)
		do()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, complete := s.TakeFresh(nil); !complete {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the list still says it is complete", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	incomplete("an entry too big for the journal", func() {
		big := strings.Repeat("b", safeio.DefaultMaxJournaled+1)
		if _, err := s.Submit(mailEnv("root@h", "root"), strings.NewReader(big), 0); err != nil {
			t.Fatal(err)
		}
	})
	incomplete("a maildrop file", func() {
		d, err := OpenDrop(state)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Submit(mailEnv("root@h", "root"), strings.NewReader("dropped"), 0); err != nil {
			t.Fatal(err)
		}
	})
	incomplete("a file someone else put into incoming/", func() {
		tmp := filepath.Join(state, "foreign")
		if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(s.incoming, NewID(time.Now()))); err != nil {
			t.Fatal(err)
		}
	})
	incomplete("more entries than the list keeps", func() {
		for range maxFresh + 1 {
			s.fresh.add(Entry{ID: NewID(time.Now())})
		}
	})
}
