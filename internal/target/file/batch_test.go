package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/testkit"
)

// tornFile writes an events file whose last line a dead writer left
// without its '\n', and returns its path.
func tornFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(`{"id":"before"}`+"\n"+`{"id":"torn","timest`), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func batchEvents(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = testEvent(fmt.Sprintf("batch-%02d", i), 100+i*1000)
	}
	return evs
}

// A batch writes exactly what delivering its events one by one writes, in
// order, after a torn line, with one fsync.
func TestDeliverBatchIsDeliverInOrderWithOneFsync(t *testing.T) {
	evs := batchEvents(100) // more than the write buffer holds
	one := New(tornFile(t))
	for _, ev := range evs {
		if err := one.Deliver(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	batched := New(tornFile(t))
	syncs := 0
	batched.sync = func(f *os.File) error { syncs++; return f.Sync() }
	for i, err := range batched.DeliverBatch(t.Context(), evs) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if syncs != 1 {
		t.Errorf("%d fsyncs for a batch of %d, want 1", syncs, len(evs))
	}
	want, err := os.ReadFile(one.path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(batched.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the batch wrote %d bytes, want %d (one by one)", len(got), len(want))
	}
	if lines := readLines(t, batched.path); len(lines) != len(evs)+2 || lines[1] != `{"id":"torn","timest` {
		t.Errorf("%d lines, want %d with the torn one alone", len(lines), len(evs)+2)
	}
	for _, ev := range evs {
		if ok, err := batched.Delivered(t.Context(), ev); err != nil || !ok {
			t.Errorf("Delivered(%s) = %v, %v", ev.ID, ok, err)
		}
	}
}

// When a write or the fsync fails, the file is left exactly as before the
// batch and every event gets a temporary error.
func TestDeliverBatchFailureLeavesTheFileAsBefore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(*Target)
	}{
		{"write", func(tg *Target) {
			tg.wrap = func(w io.Writer) io.Writer { return &testkit.FailAfter{W: w, Left: 100 << 10} }
		}},
		{"fsync", func(tg *Target) {
			tg.sync = func(*os.File) error { return errors.New("injected: fsync failed") }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := New(tornFile(t))
			before, err := os.ReadFile(tg.path)
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(tg)
			for i, err := range tg.DeliverBatch(t.Context(), batchEvents(50)) {
				if err == nil || !target.IsTemporary(err) {
					t.Errorf("event %d: %v, want a temporary error", i, err)
				}
			}
			after, err := os.ReadFile(tg.path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("file changed by a failed batch: %d bytes before, %d after", len(before), len(after))
			}
		})
	}
}
