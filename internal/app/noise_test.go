package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

// TestNoiseStateUnavailableDegrades: when the noise state and the history
// cannot be opened, the daemon still starts, logs why, and delivers every
// routed target at once instead of going silent.
func TestNoiseStateUnavailableDegrades(t *testing.T) {
	state := t.TempDir()
	for _, name := range []string{NoiseDir, HistoryDir} {
		if err := os.WriteFile(filepath.Join(state, name), []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	a, err := New(Options{
		Paths:  Paths{ConfigDir: filepath.Join(t.TempDir(), "none"), StateDir: state, Embedded: true},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatalf("New refused to start: %v", err)
	}
	defer a.queue.Close()
	if a.Noise() != nil || !strings.Contains(logs.String(), "noise control unavailable") || !strings.Contains(logs.String(), "event history unavailable") {
		t.Fatalf("engine %v; log:\n%s", a.Noise(), logs.String())
	}
	ev := &event.Event{ID: "ev1", Timestamp: time.Now(), Severity: event.Info, Fields: map[string]string{"type": "x"}}
	now, _, err := a.noise.Process(a.Settings().Notify, ev, []string{"events", "mail-root"})
	if err != nil || !slices.Equal(now, []string{"events", "mail-root"}) {
		t.Fatalf("without noise control: %v, %v", now, err)
	}
	a.history.Event(ev, now, nil) // a missing history records nothing, and does not panic
	if h := a.webHandler(); h == nil {
		t.Fatal("no status page without the history and noise state")
	}
}
