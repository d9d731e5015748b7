package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/spool"
)

func newEmbeddedApp(t *testing.T) (*App, string) {
	t.Helper()
	state := t.TempDir()
	a, err := New(Options{
		Paths:  Paths{ConfigDir: filepath.Join(t.TempDir(), "none"), StateDir: state, Embedded: true},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.queue.Close() })
	return a, state
}

func submitMail(t *testing.T, a *App, msg string) string {
	t.Helper()
	env := spool.Envelope{Kind: spool.KindMail, Source: "smtp", From: "a@b", Recipients: []string{"root@h"}, Received: time.Now()}
	id, err := a.spool.Submit(env, strings.NewReader(msg), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A spool entry whose conversion the daemon died in (out of memory, a crash
// in a library) three times is set aside on the next pick-up: quarantined,
// with an error event routed in its place, so it cannot crash-loop the
// daemon.
func TestEntryThatCrashedTheDaemonIsSetAside(t *testing.T) {
	a, state := newEmbeddedApp(t)
	id := submitMail(t, a, "Subject: poison\r\n\r\nx\r\n")
	entries, err := a.spool.Pending()
	if err != nil || len(entries) != 1 {
		t.Fatalf("pending %v %v", entries, err)
	}
	// Three pick-ups that never finished: the count is all that is left of them.
	for range maxConvertAttempts {
		if _, err := a.spool.BeginAttempt(entries[0]); err != nil {
			t.Fatal(err)
		}
	}
	a.ingestPending(context.Background(), nil)

	if left, _ := a.spool.Pending(); len(left) != 0 {
		t.Fatalf("the entry is still in the spool: %v", left)
	}
	q, _ := os.ReadDir(filepath.Join(state, "spool", "quarantine"))
	if len(q) != 1 {
		t.Fatalf("quarantine holds %d files, want the entry", len(q))
	}
	ds, err := a.queue.List()
	if err != nil || len(ds) == 0 {
		t.Fatalf("no delivery queued for the set-aside notice: %v %v", ds, err)
	}
	_, ev, err := a.queue.Get(ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != id || ev.Severity != event.Error || ev.Type() != "system-mail" || !strings.Contains(ev.Body, "could not be processed") {
		t.Errorf("notice event %+v", ev)
	}
	if n, _ := a.spool.BeginAttempt(entries[0]); n != 1 {
		t.Errorf("the attempt count was left behind: the next begin is number %d", n)
	}
}

// A conversion that finishes ends its attempt: only crashes while
// converting count towards setting an entry aside.
func TestFinishedAttemptsDoNotCount(t *testing.T) {
	a, _ := newEmbeddedApp(t)
	submitMail(t, a, "Subject: fine\r\n\r\nx\r\n")
	entries, _ := a.spool.Pending()
	for range 2 * maxConvertAttempts {
		n, err := a.spool.BeginAttempt(entries[0])
		if err != nil || n != 1 {
			t.Fatalf("attempt %d, %v; want 1 each time after a finished attempt", n, err)
		}
		a.spool.EndAttempts(entries[0])
	}
	a.ingestPending(context.Background(), nil)
	ds, _ := a.queue.List()
	if len(ds) == 0 || ds[0].EventID != entries[0].ID {
		t.Fatalf("deliveries %+v, want the mail's own", ds)
	}
	_, ev, _ := a.queue.Get(ds[0].ID)
	if ev.Title != "fine" {
		t.Errorf("event %q, want the mail", ev.Title)
	}
}
