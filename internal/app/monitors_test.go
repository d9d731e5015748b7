package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/spool"
)

// A monitor event submitted twice (a crash after the spool took it and
// before the outbox forgot it) is queued once: the daemon keeps the ID of
// its own monitor entries, and the queue knows it. Other entries never
// choose their event ID.
func TestMonitorEventResubmittedIsQueuedOnce(t *testing.T) {
	cfg, state := t.TempDir(), t.TempDir()
	writeTestFile(t, filepath.Join(cfg, "herald.cfg"), "hostname h1\nsmtp-listen none\nhttp-listen none\n")
	writeTestFile(t, filepath.Join(cfg, "notifications.cfg"),
		"file: events\n\tpath "+filepath.Join(state, "events.jsonl")+"\n\nmatcher: all\n\ttarget events\n\n"+
			"heartbeat: job\n\tmatch-field exact:type=job\n\tperiod 1h\n")
	a, err := New(Options{Paths: Paths{ConfigDir: cfg, StateDir: state}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.queue.Close()
	ev := &event.Event{ID: event.NewID(), Timestamp: time.Now().Truncate(time.Second), Severity: event.Error,
		Title: "heartbeat job is down", Fields: map[string]string{"type": "heartbeat", "monitor": "job", "status": "down"}}
	for range 2 {
		if err := a.submitMonitorEvent(ev); err != nil {
			t.Fatal(err)
		}
		a.ingestPending(context.Background(), nil)
	}
	forged := []byte(`{"id":"forged-id","severity":"info","title":"x","fields":{"type":"job"}}` + "\n")
	if _, err := a.spool.Submit(spool.Envelope{Kind: spool.KindEvent, Source: "http"}, bytes.NewReader(forged), 1<<20); err != nil {
		t.Fatal(err)
	}
	a.ingestPending(context.Background(), nil)
	ds, err := a.queue.List()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, d := range ds {
		ids[d.EventID]++
		if d.EventID == "forged-id" {
			t.Fatal("an http entry chose its own event ID")
		}
	}
	// Two events (the monitor's, once, and the http one), each to the
	// file target and the built-in mail-to-root.
	if len(ids) != 2 || ids[ev.ID] != 2 {
		t.Fatalf("deliveries by event %v: want the monitor event once and the http event", ids)
	}
	// The http event was a success of 'job', fed before leaving the spool.
	if st := a.monitors.List(); len(st) != 1 || st[0].State != "up" {
		t.Fatalf("monitors %+v", st)
	}
}

func writeTestFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
