package delivery

// Tests of the collection of finished deliveries (gc.go).

import (
	"path/filepath"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/target"
)

func TestDoneRecordsAreCollected(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	h := newHarness(t, dir, map[string]target.Target{"a": f, "b": f}, nil)
	q := h.open()
	h.run()
	ev := newEvent("ev1")
	ev.Mail = &event.Mail{Raw: []byte("Subject: x\n\nbody\n")}
	if err := q.Enqueue(ev, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	h.outcome()
	h.outcome()
	q.gc()
	if n := len(dirNames(t, filepath.Join(dir, recordsDir))); n != 2 {
		t.Fatalf("%d records right after delivery, want both kept", n)
	}
	h.clock.Advance(time.Hour + time.Second)
	q.gc()
	for _, sub := range []string{recordsDir, eventsDir} {
		if got := dirNames(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s still holds %v after the retention", sub, got)
		}
	}
	if l := h.list(); len(l) != 0 {
		t.Errorf("List = %+v", l)
	}
}
