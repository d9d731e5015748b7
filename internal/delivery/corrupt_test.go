package delivery

import (
	stdmaps "maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/target"
)

// TestCorruptFilesBecomeDeadLetters: a truncated event file and a garbled
// record do not make their deliveries vanish. Each becomes a dead letter
// with the reason, is reported through OnDead (the daemon's
// delivery-failed event) and counted in Stats, and survives a restart.
func TestCorruptFilesBecomeDeadLetters(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]target.Target{"a": &fake{}, "b": &fake{}, "c": &fake{}}
	h := newHarness(t, dir, targets, nil)
	q := h.open()
	for _, id := range []string{"ev1", "ev2"} {
		if err := q.Enqueue(newEvent(id), []string{"a", "b", "c"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// ev1's file loses its end (the last target of its list with it);
	// ev2's delivery to c gets a garbled record.
	p := filepath.Join(dir, eventsDir, "ev1.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cut := strings.LastIndex(string(b), `{"name":"c"`) + 5
	if err := os.WriteFile(p, b[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, recordsDir, "ev2.c.json"), []byte(`{"event_id":"ev2","tar`), 0o600); err != nil {
		t.Fatal(err)
	}

	for start := range 2 {
		h2 := newHarness(t, dir, targets, nil)
		q2 := h2.open()
		want := map[string]string{
			"ev1.a": StateDead, "ev1.b": StateDead, "ev2.a": StatePending, "ev2.b": StatePending, "ev2.c": StateDead,
		}
		l := h2.list()
		if start > 0 {
			want["ev2.a"], want["ev2.b"] = StateDone, StateDone
		}
		if got, w := ids(l), slices.Sorted(stdmaps.Keys(want)); !slices.Equal(got, w) {
			t.Fatalf("start %d: deliveries %v, want %v", start+1, got, w)
		}
		for _, d := range l {
			if d.State != want[d.ID] {
				t.Errorf("start %d: %s is %s, want %s", start+1, d.ID, d.State, want[d.ID])
			}
			if d.State == StateDead && !strings.Contains(d.LastError, "quarantine") {
				t.Errorf("start %d: %s: %q does not say where the file went", start+1, d.ID, d.LastError)
			}
		}
		if st := q2.Stats(); st.Dead != 3 {
			t.Errorf("start %d: Stats %+v, want 3 dead", start+1, st)
		}
		if start == 0 {
			// Counted once as outcomes (the metrics), when Open made them.
			for range 3 {
				if d := <-h2.outcomes; d.State != StateDead {
					t.Errorf("outcome %+v, want dead", d)
				}
			}
		} else if n := len(h2.outcomes); n != 0 {
			t.Errorf("start %d: %d outcomes reported again", start+1, n)
		}
		if start == 0 {
			// Reported once, through OnDead, when Run starts.
			h2.run()
			for range 3 {
				select {
				case d := <-h2.dead:
					if d.State != StateDead {
						t.Errorf("OnDead got %+v", d)
					}
				case <-time.After(waitLimit):
					t.Fatal("OnDead not called for every dead letter")
				}
			}
			for range 2 {
				<-h2.outcomes // ev2.a, ev2.b delivered
			}
			h2.stop()
			continue
		}
		if n := h2.deadN.Load(); n != 0 {
			t.Errorf("start %d: OnDead called %d times again", start+1, n)
		}
		if err := q2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
