package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The reserve refuses submissions as a temporary failure while free space
// is below it, before anything is written: the daemon's own paths at the
// full reserve, the maildrop at half of it for root. The shim learns the
// reserve from the file the daemon publishes.
func TestReserveRefusesBeforeTheDiskIsFull(t *testing.T) {
	s, state, _ := newSpool(t)
	avail, err := available(s.incoming)
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: x\n\nx\n"

	s.SetLimits(Limits{MinFree: avail + 1<<40})
	_, err = s.Submit(mailEnv("a@b", "root"), strings.NewReader(body), 0)
	if !errors.Is(err, ErrLowSpace) || !IsTemporary(err) {
		t.Fatalf("daemon Submit below the reserve: %v", err)
	}
	if err := s.SpaceOK(); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("SpaceOK: %v", err)
	}
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Submit(mailEnv("a@b", "root"), strings.NewReader(body), 0); !errors.Is(err, ErrLowSpace) || !IsTemporary(err) {
		t.Fatalf("maildrop Submit below the reserve: %v", err)
	}
	if es, _ := s.Pending(); len(es) != 0 {
		t.Fatalf("%d entries written below the reserve", len(es))
	}

	// Root needs half the reserve: between half and all of it, root's
	// submission passes and the daemon's does not.
	s.SetLimits(Limits{MinFree: avail + avail/2})
	if os.Getuid() == 0 {
		if _, err := d.Submit(mailEnv("a@b", "root"), strings.NewReader(body), 0); err != nil {
			t.Fatalf("root within its half of the reserve: %v", err)
		}
	}
	if err := s.SpaceOK(); err == nil {
		t.Fatal("the daemon's paths used the reserve")
	}

	s.SetLimits(Limits{MinFree: 1 << 20})
	if _, err := s.Submit(mailEnv("a@b", "root"), strings.NewReader(body), 0); err != nil {
		t.Fatalf("with space: %v", err)
	}
}

// A user other than root may not have more than the limit waiting in the
// maildrop; the daemon publishes each uid's use after a pass.
func TestPerUIDLimit(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test gives entries to another owner and must run as root")
	}
	s, state, _ := newSpool(t)
	s.SetLimits(Limits{MinFree: 1 << 20, MaxPerUID: 1000})
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		id, err := d.Submit(mailEnv("u@h", "root"), strings.NewReader(strings.Repeat("x", 600)), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(s.maildrop, id), 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	es, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	s.NoteUsage(es)
	data, _ := os.ReadFile(filepath.Join(state, "spool", limitsName))
	if !strings.Contains(string(data), "uid 1000 1200\n") || !strings.Contains(string(data), "max-per-uid 1000\n") {
		t.Fatalf("published:\n%s", data)
	}
	if st, _ := os.Stat(filepath.Join(state, "spool", limitsName)); st.Mode().Perm() != 0o644 {
		t.Errorf("limits file mode %v", st.Mode())
	}
	if err := checkDrop(s.maildrop, 1000); !errors.Is(err, ErrUserLimit) || !IsTemporary(err) {
		t.Fatalf("uid 1000 over its limit: %v", err)
	}
	for _, uid := range []int{0, 1001} {
		if err := checkDrop(s.maildrop, uid); err != nil {
			t.Errorf("uid %d: %v", uid, err)
		}
	}
	// Once the daemon has taken the entries, the user may submit again.
	s.NoteUsage(nil)
	if err := checkDrop(s.maildrop, 1000); err != nil {
		t.Fatalf("after the pass: %v", err)
	}
}

// Partial files of killed writers are reclaimed while the daemon runs; a
// live writer's is kept.
func TestReclaimPartialsWhileRunning(t *testing.T) {
	s, _, lb := newSpool(t)
	dead := writeTemp(t, s.maildrop, time.Hour)
	young := writeTemp(t, s.incoming, 0)
	live := writeTemp(t, s.incoming, time.Hour)
	lf, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if n := s.ReclaimPartials(); n != 1 {
		t.Fatalf("reclaimed %d, want 1\n%s", n, lb)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the dead writer's partial file is still there")
	}
	for _, p := range []string{young, live} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed", p)
		}
	}
}

func TestPruneQuarantine(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		maxAge  time.Duration
		maxSize int64
		want    []string // what remains
	}{
		{"age only", 30 * 24 * time.Hour, 0, []string{"c-10d", "d-1d", "e-new"}},
		{"size only", 0, 2500, []string{"d-1d", "e-new"}},
		{"both", 30 * 24 * time.Hour, 1500, []string{"e-new"}},
		{"unbounded", 0, 0, []string{"a-60d", "b-31d", "c-10d", "d-1d", "e-new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, lb := newSpool(t)
			for _, f := range []struct {
				name string
				age  time.Duration
			}{{"a-60d", 60 * 24 * time.Hour}, {"b-31d", 31 * 24 * time.Hour}, {"c-10d", 10 * 24 * time.Hour}, {"d-1d", 24 * time.Hour}, {"e-new", 0}} {
				p := filepath.Join(s.quarantine, f.name)
				if err := os.WriteFile(p, []byte(strings.Repeat("q", 1000)), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, now.Add(-f.age), now.Add(-f.age)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.PruneQuarantine(tc.maxAge, tc.maxSize, now); err != nil {
				t.Fatal(err)
			}
			names, _ := readNames(s.quarantine)
			got := fmt.Sprint(slices.Sorted(slices.Values(names)))
			if got != fmt.Sprint(tc.want) {
				t.Fatalf("left %v, want %v", got, tc.want)
			}
			if len(tc.want) < 5 && !strings.Contains(lb.String(), "quarantined file removed") {
				t.Errorf("no log line:\n%s", lb)
			}
		})
	}
}

// A quarantined entry's age starts when it is quarantined.
func TestQuarantineDatesEntries(t *testing.T) {
	s, _, _ := newSpool(t)
	p := filepath.Join(s.incoming, NewID(time.Now()))
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-90 * 24 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.Pending(); len(es) != 0 {
		t.Fatal("garbage read as an entry")
	}
	if n, _ := s.PruneQuarantine(30*24*time.Hour, 0, time.Now()); n != 0 {
		t.Fatal("an entry quarantined just now was pruned as old")
	}
}
