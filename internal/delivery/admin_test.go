package delivery

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"herald/internal/event"
	"herald/internal/target"
)

// Flush makes a delivery in back-off due at once, without moving the clock;
// a dead one stays dead.
func TestFlushMakesBackedOffDeliveriesDue(t *testing.T) {
	f := &fake{script: []error{errTemp}}
	dead := &fake{script: []error{target.Permanent(errors.New("550 no such user"))}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"relay": f, "gone": dead}, nil)
	q := h.open()
	if err := q.Enqueue(newEvent("e1"), []string{"relay", "gone"}); err != nil {
		t.Fatal(err)
	}
	h.run()
	first := map[string]Delivery{}
	for range 2 {
		d := h.outcome()
		first[d.Target] = d
	}
	if d := first["relay"]; d.State != StatePending || !d.NextAttempt.After(h.clock.Now()) {
		t.Fatalf("after a temporary failure: %+v (now %v)", d, h.clock.Now())
	}
	if first["gone"].State != StateDead {
		t.Fatalf("gone: %+v", first["gone"])
	}
	if n := q.Flush(); n != 1 {
		t.Errorf("Flush made %d deliveries due, want 1 (the dead one stays dead)", n)
	}
	d := h.outcome()
	if d.Target != "relay" || d.State != StateDone {
		t.Fatalf("after Flush: %+v", d)
	}
	if calls, _ := dead.stats(); calls != 1 {
		t.Errorf("the dead delivery was tried %d times, want 1", calls)
	}
	if q.Flush() != 0 {
		t.Errorf("Flush of an empty queue made something due")
	}
}

// The read-only view lists what the owning queue lists, creates nothing
// (not even in a directory that does not exist), and reads while another
// process holds the lock.
func TestReadOnlyView(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "queue")
	if ds, err := OpenReadOnly(missing).List(); err != nil || len(ds) != 0 {
		t.Fatalf("missing queue: %v %v", ds, err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the read-only view created %s: %v", missing, err)
	}
	if Exists(missing) {
		t.Error("Exists on a missing queue")
	}

	dir := t.TempDir()
	f := &fake{script: []error{errTemp}}
	h := newHarness(t, dir, map[string]target.Target{"relay": f, "later": &fake{}}, nil)
	q := h.open()
	ev := newEvent("e1")
	ev.Mail = &event.Mail{Raw: []byte("Subject: x\r\n\r\nbody\r\n"), From: "alice@pve1", Recipients: []string{"boss@example.com"}, UID: 1000}
	if err := q.Enqueue(ev, []string{"relay"}); err != nil {
		t.Fatal(err)
	}
	h.run()
	h.outcome() // relay: pending after a temporary failure, with a record
	if err := q.Enqueue(newEvent("e2"), []string{"later"}); err != nil {
		t.Fatal(err)
	}
	h.outcome()
	if !Exists(dir) {
		t.Error("Exists on an open queue")
	}
	want := h.list()
	h.writeOut() // what a stopped daemon leaves
	got, err := OpenReadOnly(dir).List()
	if err != nil {
		t.Fatal(err)
	}
	strip := func(ds []Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID+" "+d.State)
		}
		return out
	}
	if !slices.Equal(strip(got), strip(want)) {
		t.Errorf("read-only list %v, queue's %v", strip(got), strip(want))
	}
	items, err := OpenReadOnly(dir).Items()
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].EventID != "e1" || items[0].UID != 1000 || items[0].From != "alice@pve1" ||
		!slices.Equal(items[0].Recipients, []string{"boss@example.com"}) || items[0].Size != len(ev.Mail.Raw) {
		t.Errorf("items (done deliveries left out) = %+v", items)
	}
	d, gotEv, err := OpenReadOnly(dir).Get("e1.relay")
	if err != nil || d.State != StatePending || gotEv == nil || string(gotEv.Mail.Raw) != string(ev.Mail.Raw) {
		t.Errorf("Get: %+v %+v %v", d, gotEv, err)
	}
	if _, _, err := OpenReadOnly(dir).Get("e9.relay"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing delivery: %v", err)
	}
	qItems, err := q.Items()
	if err != nil || len(qItems) != 1 || qItems[0].EventID != "e1" {
		t.Errorf("queue items %+v %v", qItems, err)
	}
}
