package delivery

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"herald/internal/event"
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
			if names := dirNames(t, filepath.Join(dir, eventsDir)); !slices.Equal(names, []string{"ev1.eml", "ev1.json"}) {
				t.Errorf("events directory holds %v", names)
			}
		})
	}
}
