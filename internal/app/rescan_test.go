package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/spool"
)

func TestRescanBackoff(t *testing.T) {
	p := rescanPolicy{retryMin: time.Second, retryMax: 8 * time.Second}
	var got []time.Duration
	d := time.Duration(0)
	for range 6 {
		d = p.next(d, true)
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("retry delays %v, want %v seconds", got, want)
		}
	}
	if p.next(d, false) != 0 {
		t.Fatal("a clean pass does not reset the back-off")
	}
}

// An entry whose ingest fails for a temporary reason (here the delivery
// queue's directory is not a directory for a while) is retried on the
// loop's own timer: it is queued once the queue works again, although no
// other mail arrives. While it fails for longer than the bound, /healthz
// says so; afterwards it is healthy again.
func TestSpoolHealsWithoutNewMail(t *testing.T) {
	state := t.TempDir()
	a, err := New(Options{
		Paths:  Paths{ConfigDir: filepath.Join(t.TempDir(), "none"), StateDir: state, Embedded: true},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.queue.Close()
	a.heal.policy = rescanPolicy{retryMin: 20 * time.Millisecond, retryMax: 100 * time.Millisecond, idle: time.Hour, stuckAfter: 300 * time.Millisecond}

	qdir := filepath.Join(state, "queue")
	if err := os.Rename(qdir, qdir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(qdir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := a.spool.Submit(spool.Envelope{Kind: spool.KindMail, Source: "smtp", From: "a@b"},
		strings.NewReader("Subject: waits\r\n\r\nbody\r\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake := make(chan struct{}, 1)
	wake <- struct{}{} // the start-up pass; nothing else ever wakes the loop
	done := make(chan struct{})
	go func() { defer close(done); a.ingestLoop(ctx, wake) }()
	defer func() { cancel(); <-done }()

	waitUntil(t, "/healthz to report the stuck entry", func() bool {
		err := a.health()
		return err != nil && strings.Contains(err.Error(), "1 spool entries stuck")
	})
	if err := os.Remove(qdir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(qdir+".away", qdir); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the entry to leave the spool", func() bool {
		es, err := a.spool.Pending()
		return err == nil && len(es) == 0
	})
	if st := a.queue.Stats(); st.Pending == 0 {
		t.Fatalf("entry %s left the spool but nothing is queued: %+v", id, st)
	}
	waitUntil(t, "/healthz to recover", func() bool { return a.health() == nil })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The running ingest loop reclaims the partial file of a shim killed while
// writing (not only Recover at start-up does) and prunes quarantine/.
func TestIngestLoopCaresForTheSpool(t *testing.T) {
	state := t.TempDir()
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "herald.cfg"), []byte("quarantine-max-age 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Paths: Paths{ConfigDir: cfg, StateDir: state}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.queue.Close()
	// Left behind after start-up's recovery: a dead shim's partial file
	// and an old quarantined entry.
	old := time.Now().Add(-2 * time.Hour)
	partial := filepath.Join(state, "spool", "maildrop", ".tmp-killed-shim")
	quarantined := filepath.Join(state, "spool", "quarantine", "incoming-old")
	for _, p := range []string{partial, quarantined} {
		if err := os.WriteFile(p, []byte("HERALD-SPOOL 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	done := make(chan struct{})
	go func() { defer close(done); a.ingestLoop(ctx, wake) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "the partial and the old quarantined file to go", func() bool {
		_, e1 := os.Stat(partial)
		_, e2 := os.Stat(quarantined)
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	})
}
