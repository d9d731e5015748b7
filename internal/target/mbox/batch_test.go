package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/testkit"
)

// batchEvents returns n events of both kinds, each with its own ID.
func batchEvents(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		ev := renderedEvent()
		if i%2 == 0 {
			ev = mailEvent()
		}
		ev.ID = fmt.Sprintf("batch-%02d", i)
		evs[i] = ev
	}
	return evs
}

// tornMailbox writes a mailbox whose last message a dead writer left
// without its final newline, and returns its path.
func tornMailbox(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "root")
	if err := os.WriteFile(path, []byte("From a@b Fri May 23 11:59:32 2025\nSubject: torn\n\ncut he"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A batch writes exactly what delivering its events one by one writes, in
// order, after a torn message of a dead writer, with one fsync, and leaves
// no lock file.
func TestDeliverBatchIsDeliverInOrderWithOneFsync(t *testing.T) {
	evs := batchEvents(5)
	one := newTarget(t, tornMailbox(t))
	for _, ev := range evs {
		if err := one.Deliver(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	batched := newTarget(t, tornMailbox(t))
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
	want, got := readFile(t, one.path), readFile(t, batched.path)
	if !bytes.Equal(got, want) {
		t.Fatalf("the batch wrote\n%s\nwant (one by one)\n%s", got, want)
	}
	if n := countMessages(t, got); n != len(evs)+1 {
		t.Errorf("%d messages, want %d", n, len(evs)+1)
	}
	for _, ev := range evs {
		if ok, err := batched.Delivered(t.Context(), ev); err != nil || !ok {
			t.Errorf("Delivered(%s) = %v, %v", ev.ID, ok, err)
		}
	}
	if _, err := os.Stat(batched.path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// When the mailbox fails (a write, the fsync), the mailbox is left exactly
// as before the batch and every event gets a temporary error.
func TestDeliverBatchFailureLeavesTheMailboxAsBefore(t *testing.T) {
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
			tg := newTarget(t, tornMailbox(t))
			before := readFile(t, tg.path)
			evs := batchEvents(40)
			for _, ev := range evs {
				if ev.Mail != nil {
					ev.Mail.Raw = bytes.Repeat([]byte("a long line of the message body\n"), 200)
				}
			}
			tc.breakIt(tg)
			for i, err := range tg.DeliverBatch(t.Context(), evs) {
				if err == nil || !target.IsTemporary(err) {
					t.Errorf("event %d: %v, want a temporary error", i, err)
				}
			}
			if after := readFile(t, tg.path); !bytes.Equal(before, after) {
				t.Fatalf("mailbox changed by a failed batch: %d bytes before, %d after", len(before), len(after))
			}
			if _, err := os.Stat(tg.path + ".lock"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lock file left behind after a failure: %v", err)
			}
		})
	}
}

// failingReader yields n bytes of mail, then an error.
type failingReader struct{ left int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, errors.New("injected: mail file unreadable")
	}
	n := min(len(p), r.left)
	copy(p, bytes.Repeat([]byte("x\n"), n/2+1)[:n])
	r.left -= n
	return n, nil
}

func (r *failingReader) Close() error { return nil }

// A message whose own mail cannot be read (a streamed mail whose file
// fails midway, after more than a buffer went out) fails alone: what of it
// went in is cut back, and the others are written as if it were not there.
func TestDeliverBatchUnreadableMailFailsAlone(t *testing.T) {
	for _, bad := range []int{0, 2, 4} {
		t.Run(fmt.Sprint(bad), func(t *testing.T) {
			evs := batchEvents(5)
			var others []*event.Event
			for i, ev := range evs {
				if i != bad {
					others = append(others, ev)
				}
			}
			evs[bad].Mail.Open = func() (io.ReadCloser, error) { return &failingReader{left: 200 << 10}, nil }
			one := newTarget(t, tornMailbox(t))
			for _, ev := range others {
				if err := one.Deliver(t.Context(), ev); err != nil {
					t.Fatal(err)
				}
			}
			tg := newTarget(t, tornMailbox(t))
			errs := tg.DeliverBatch(t.Context(), evs)
			for i, err := range errs {
				if i == bad {
					if err == nil || !target.IsTemporary(err) || !strings.Contains(err.Error(), "unreadable") {
						t.Errorf("the event with the unreadable mail: %v, want a temporary error saying so", err)
					}
				} else if err != nil {
					t.Errorf("event %d: %v", i, err)
				}
			}
			if got, want := readFile(t, tg.path), readFile(t, one.path); !bytes.Equal(got, want) {
				t.Fatalf("the batch wrote %d bytes, want %d (the others one by one)", len(got), len(want))
			}
		})
	}
}
