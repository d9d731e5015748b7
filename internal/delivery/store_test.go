package delivery

// Tests of the queue's files: what Enqueue writes and when it fails (store.go).

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/safeio"
	"herald/internal/target"
)

func TestEnqueueIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	f := &fake{}
	h := newHarness(t, dir, map[string]target.Target{"a": f, "b": f, "c": f}, nil)
	q := h.open()
	ev := newEvent("ev1")
	if err := q.Enqueue(ev, nil); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, filepath.Join(dir, eventsDir)); len(names) != 0 {
		t.Fatalf("empty target list wrote %v", names)
	}
	if err := q.Enqueue(ev, []string{"a", "b", "a"}); err != nil {
		t.Fatal(err)
	}
	before := h.get("ev1.a")
	h.clock.Advance(time.Minute)
	if err := q.Enqueue(ev, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(h.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev1.c"}) {
		t.Fatalf("deliveries %v", got)
	}
	if got := listedNames(t, dir, "ev1"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("event file lists %v", got)
	}
	if after := h.get("ev1.a"); !after.Created.Equal(before.Created) {
		t.Error("existing delivery changed")
	}
	// Delivered, then the spool routes the same entry again after a
	// restart: nothing new happens.
	h.run()
	for range 3 {
		h.outcome()
	}
	h.stop()
	h2 := newHarness(t, dir, map[string]target.Target{"a": f, "b": f, "c": f}, nil)
	h2.clock.Advance(48 * time.Hour) // down for two days: done records still count
	q2 := h2.open()
	if err := q2.Enqueue(ev, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	h2.run()
	if err := q2.Enqueue(newEvent("ev2"), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if d := h2.outcome(); d.EventID != "ev2" {
		t.Fatalf("event re-enqueued after a restart was delivered again: %+v", d)
	}
	if calls, _ := f.stats(); calls != 4 {
		t.Errorf("%d deliveries, want 4", calls)
	}
}

func TestEnqueueRejectsBadNames(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil, nil)
	q := h.open()
	defer q.Close()
	for _, tc := range []struct {
		id      string
		targets []string
	}{
		{"../x", []string{"a"}},
		{"a.b", []string{"a"}},
		{"", []string{"a"}},
		{"ok", []string{"a/b"}},
		{"ok", []string{".hidden"}},
		{"ok", []string{""}},
	} {
		if err := q.Enqueue(newEvent(tc.id), tc.targets); err == nil {
			t.Errorf("Enqueue(%q, %q) accepted", tc.id, tc.targets)
		}
	}
	if names := dirNames(t, filepath.Join(h.dir, recordsDir)); len(names) != 0 {
		t.Errorf("rejected enqueues wrote %v", names)
	}
	if err := q.Enqueue(newEvent("ok"), []string{"smtp.relay-1", "_x"}); err != nil {
		t.Errorf("valid names refused: %v", err)
	}
}

// TestEnqueueWriteFailures injects a failure at every step of every file
// write of an Enqueue (a new mail event to 3 targets, and targets added to an
// event already queued): it must return an error, leave no partial file, and
// leave a state that Open accepts, with nothing of the failed call queued,
// and that a second Enqueue completes without duplicates.
func TestEnqueueWriteFailures(t *testing.T) {
	// StepSyncDir names the directory, not the file: TestSyncDirFailure.
	steps := []safeio.Step{safeio.StepCreate, safeio.StepWrite, safeio.StepSync, safeio.StepClose, safeio.StepRename}
	cases := []struct {
		name   string
		before []string // queued first, without failure
		file   string   // the write that fails
	}{
		{"new", nil, "ev1.eml"},
		{"new", nil, "ev1.json"},
		{"add", []string{"a"}, "ev1.json"},
	}
	for _, tc := range cases {
		for _, step := range steps {
			t.Run(tc.name+"/"+tc.file+"/"+string(step), func(t *testing.T) {
				dir := t.TempDir()
				h := newHarness(t, dir, map[string]target.Target{"a": &fake{}, "b": &fake{}, "c": &fake{}}, nil)
				q := h.open()
				ev := newEvent("ev1")
				ev.Mail = &event.Mail{Raw: []byte("Subject: x\r\n\r\nbody\r\n"), From: "root@h", Recipients: []string{"root"}}
				if err := q.Enqueue(ev, tc.before); err != nil {
					t.Fatal(err)
				}
				injected := errors.New("injected failure")
				safeio.FailHook = func(s safeio.Step, path string) error {
					if s == step && filepath.Base(path) == tc.file {
						return injected
					}
					return nil
				}
				err := q.Enqueue(ev, []string{"a", "b", "c"})
				safeio.FailHook = nil
				if !errors.Is(err, injected) {
					t.Fatalf("Enqueue = %v, want the injected failure", err)
				}
				if got := ids(h.list()); len(got) != len(tc.before) {
					t.Errorf("after the failed Enqueue the queue holds %v", got)
				}
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				checkConsistent(t, dir)
				h2 := newHarness(t, dir, h.targets, nil)
				q2 := h2.open()
				var want []string
				for _, n := range tc.before {
					want = append(want, "ev1."+n)
				}
				if got := ids(h2.list()); !slices.Equal(got, want) {
					t.Fatalf("after reopening: %v, want %v (what was queued before the failure)", got, want)
				}
				if err := q2.Enqueue(ev, []string{"a", "b", "c"}); err != nil {
					t.Fatal(err)
				}
				if got := ids(h2.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev1.c"}) {
					t.Fatalf("deliveries after the retry: %v", got)
				}
				_, got, err := q2.Get("ev1.b")
				if err != nil || got.Mail == nil || string(got.Mail.Raw) != string(ev.Mail.Raw) {
					t.Fatalf("event after the retry: %+v, %v", got, err)
				}
				checkConsistent(t, dir)
				if err := q2.Close(); err != nil {
					t.Fatal(err)
				}
				h3 := newHarness(t, dir, h.targets, nil)
				q3 := h3.open()
				if got := ids(h3.list()); !slices.Equal(got, []string{"ev1.a", "ev1.b", "ev1.c"}) {
					t.Fatalf("deliveries after the retry and a restart: %v", got)
				}
				if err := q3.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestSyncDirFailure: safeio's directory sync is a step of its own (the
// hook sees the directory's path); the event file is the commit of an
// Enqueue, so its directory sync failing fails the Enqueue.
func TestSyncDirFailure(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, map[string]target.Target{"a": &fake{}}, nil)
	q := h.open()
	defer q.Close()
	safeio.FailHook = func(s safeio.Step, path string) error {
		if s == safeio.StepSyncDir && filepath.Base(path) == eventsDir {
			return errors.New("injected EIO")
		}
		return nil
	}
	err := q.Enqueue(newEvent("ev1"), []string{"a"})
	safeio.FailHook = nil
	if err == nil {
		t.Fatal("Enqueue succeeded although the event file was not durable")
	}
}

// checkConsistent asserts the on-disk invariants: no temporary files, every
// record parses and names an event whose files are complete.
func checkConsistent(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{eventsDir, recordsDir} {
		for _, n := range dirNames(t, filepath.Join(dir, sub)) {
			if strings.HasPrefix(n, safeio.TempPrefix) {
				t.Errorf("temporary file %s/%s left behind", sub, n)
			}
		}
	}
	for _, n := range dirNames(t, filepath.Join(dir, recordsDir)) {
		id := strings.TrimSuffix(n, ".json")
		r, err := readRecord(filepath.Join(dir, recordsDir, n), id)
		if err != nil {
			t.Errorf("record %s: %v", n, err)
			continue
		}
		q := &Queue{dir: dir}
		if _, err := q.readEvent(r.EventID, true); err != nil {
			t.Errorf("record %s names an unreadable event: %v", n, err)
		}
	}
}

// mailSeer records whether the event it got carried the raw mail.
type mailSeer struct {
	mu  sync.Mutex
	got []bool
}

func (m *mailSeer) Deliver(_ context.Context, ev *event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, ev.Mail != nil && len(ev.Mail.Raw) > 0)
	return nil
}

type blindSeer struct{ *mailSeer }

func (blindSeer) IgnoresMail() bool { return true }

// A target that declares it never reads the raw mail (target.MailBlind) is
// handed the event without it, so a 50 MB mail is not loaded for a file or
// webhook target; every other target gets the mail.
func TestMailNotLoadedForMailBlindTargets(t *testing.T) {
	seer, blind := &mailSeer{}, blindSeer{&mailSeer{}}
	h := newHarness(t, t.TempDir(), map[string]target.Target{"mbox": seer, "file": blind}, nil)
	q := h.open()
	h.run()
	ev := newEvent("ev1")
	ev.Mail = &event.Mail{Raw: []byte("Subject: x\n\nbody\n"), From: "a@b"}
	if err := q.Enqueue(ev, []string{"mbox", "file"}); err != nil {
		t.Fatal(err)
	}
	h.outcome()
	h.outcome()
	if seer.got == nil || !seer.got[0] {
		t.Errorf("the mail-reading target did not get the mail: %v", seer.got)
	}
	if blind.got == nil || blind.got[0] {
		t.Errorf("the mail-blind target got the mail loaded: %v", blind.got)
	}
}
