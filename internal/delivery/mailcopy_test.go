package delivery

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"herald/internal/event"
	"herald/internal/mmapfile"
	"herald/internal/target"
)

// A mail that comes with Open (a spool entry the daemon mapped) is copied
// into the queue from the reader, byte for byte; a copy that comes up
// short is an error and commits nothing.
func TestEnqueueCopiesTheMailFromItsFile(t *testing.T) {
	msg := []byte("Subject: x\r\n\r\n" + string(bytes.Repeat([]byte("0123456789\r\n"), 1000)))
	for _, tc := range []struct {
		name    string
		serve   []byte // what Open's reader yields
		wantErr bool
	}{
		{"whole", msg, false},
		{"short", msg[:len(msg)-5], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHarness(t, dir, map[string]target.Target{"a": &fake{}}, nil)
			q := h.open()
			ev := newEvent("ev1")
			opened := 0
			ev.Mail = &event.Mail{Raw: msg, From: "root@h", Recipients: []string{"root"},
				Open: func() (io.ReadCloser, error) {
					opened++
					return io.NopCloser(bytes.NewReader(tc.serve)), nil
				}}
			err := q.Enqueue(ev, []string{"a"})
			if opened != 1 {
				t.Errorf("Open called %d times, want once", opened)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatal("a short copy was accepted")
				}
				if names := dirNames(t, filepath.Join(dir, eventsDir)); len(names) != 0 {
					t.Fatalf("a failed copy left %v", names)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, eventsDir, "ev1.eml"))
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("queued mail: %d bytes (%v), want the %d of the mail", len(got), err, len(msg))
			}
			h.writeOut()
			if names := dirNames(t, filepath.Join(dir, eventsDir)); !slices.Equal(names, []string{"ev1.eml", "ev1.json"}) {
				t.Errorf("events directory holds %v", names)
			}
		})
	}
}

// rawReader is a target that reads the raw mail it is handed, as mbox does.
type rawReader struct {
	mu     sync.Mutex
	seen   []byte // a copy of Raw at delivery
	open   []byte // what Open read at delivery
	mail   *event.Mail
	called int
}

func (m *rawReader) Deliver(_ context.Context, ev *event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.called++
	m.mail = ev.Mail
	if ev.Mail != nil {
		m.seen = bytes.Clone(ev.Mail.Raw)
		if ev.Mail.Open != nil {
			r, err := ev.Mail.Open()
			if err != nil {
				return err
			}
			defer r.Close()
			if m.open, err = io.ReadAll(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// A delivery attempt of a large mail maps it from the queue: the target
// sees the mail byte for byte, can stream it with Open, and once the
// attempt is over the event no longer refers to the mapping. A small
// mail is read as before, without Open.
func TestAttemptMapsALargeMail(t *testing.T) {
	for _, size := range []int{100, mmapfile.Min + 1000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			msg := append([]byte("Subject: x\r\n\r\n"), bytes.Repeat([]byte("y"), size)...)
			seer := &rawReader{}
			h := newHarness(t, t.TempDir(), map[string]target.Target{"mb": seer}, nil)
			q := h.open()
			h.run()
			ev := newEvent("ev1")
			ev.Mail = &event.Mail{Raw: msg, From: "root@h", Recipients: []string{"root"}}
			if err := q.Enqueue(ev, []string{"mb"}); err != nil {
				t.Fatal(err)
			}
			if d := h.outcome(); d.State != StateDone {
				t.Fatalf("delivery %+v", d)
			}
			seer.mu.Lock()
			defer seer.mu.Unlock()
			if !bytes.Equal(seer.seen, msg) {
				t.Fatalf("the target saw %d bytes, want the %d of the mail", len(seer.seen), len(msg))
			}
			large := size >= mmapfile.Min
			if large != (seer.open != nil) || (large && !bytes.Equal(seer.open, msg)) {
				t.Errorf("Open read %d bytes for a %d-byte mail", len(seer.open), len(msg))
			}
			if large && (seer.mail.Raw != nil || seer.mail.Open != nil) {
				t.Error("the event still refers to the mapping after the attempt")
			}
		})
	}
}
