package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"herald/internal/spool"
)

// A 50 MB mail is mapped from its spool entry, converted from the mapping
// and copied file to file into the delivery queue: picking it up allocates
// a fraction of its size (reading it would cost 50 MB at once, and the
// garbage collector lets the heap grow to twice what is live), and the
// queued copy is the mail byte for byte.
func TestBigMailIsMappedNotRead(t *testing.T) {
	a, state := newEmbeddedApp(t)
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	var msg bytes.Buffer
	msg.WriteString("From: backup@example.com\r\nSubject: big\r\n\r\nFIRST LINE\r\n")
	for msg.Len() < 50<<20 {
		msg.WriteString(line)
	}
	msg.WriteString("LAST LINE\r\n")
	env := spool.Envelope{Kind: spool.KindMail, Source: "smtp", From: "a@b", Recipients: []string{"root@h"}, Received: time.Now()}
	id, err := a.spool.Submit(env, bytes.NewReader(msg.Bytes()), 64<<20)
	if err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if failed, _ := a.ingestPending(context.Background(), nil); len(failed) != 0 {
		t.Fatalf("entries failed: %v", failed)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("picking up a %d MiB mail allocated %.1f MiB", msg.Len()>>20, float64(alloc)/(1<<20))
	// Mapped, the pick-up allocates ~27 MiB (~40 under the race
	// detector), read ~83 (more under the race detector).
	limit := uint64(40 << 20)
	if raceEnabled {
		limit = 64 << 20
	}
	if alloc > limit {
		t.Errorf("picking up a %d MiB mail allocated %.1f MiB, want at most %d MiB (reading it would cost 50 more)", msg.Len()>>20, float64(alloc)/(1<<20), limit>>20)
	}

	if left, _ := a.spool.Pending(); len(left) != 0 {
		t.Fatalf("the entry is still in the spool: %v", left)
	}
	emls, _ := filepath.Glob(filepath.Join(state, "*", "events", id+".eml"))
	if len(emls) != 1 {
		t.Fatalf("queued mail copies: %v", emls)
	}
	got, err := os.ReadFile(emls[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg.Bytes()) {
		t.Errorf("the queued copy differs from the mail: %d bytes, want %d", len(got), msg.Len())
	}
	ds, err := a.queue.List()
	if err != nil || len(ds) == 0 {
		t.Fatalf("no delivery queued: %v %v", ds, err)
	}
	_, ev, err := a.queue.Get(ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Title != "big" || !strings.HasPrefix(ev.Body, "FIRST LINE\n") || !strings.HasSuffix(ev.Body, "\nLAST LINE") || !strings.Contains(ev.Body, "bytes cut here") {
		t.Errorf("event %q, body of %d bytes: %.80q ... %q", ev.Title, len(ev.Body), ev.Body, ev.Body[max(0, len(ev.Body)-40):])
	}
}
