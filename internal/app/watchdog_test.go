package app

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/systemd"
)

// The daemon's health as systemd's watchdog sees it: while the delivery
// loop turns, pings go out; when due work waits longer than maxStall with
// no loop turning (here: Run never started the loop), App.Healthy turns
// false and the watchdog stops pinging, so systemd restarts herald.
func TestWatchdogStopsWhenTheDeliveryLoopIsWedged(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	state := t.TempDir()
	a, err := New(Options{
		Paths:  Paths{ConfigDir: filepath.Join(t.TempDir(), "none"), StateDir: state, Embedded: true},
		Logger: slog.New(slog.DiscardHandler),
		Now:    now,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.queue.Close()
	ev := &event.Event{ID: "ev1", Timestamp: clock, Severity: event.Error, Fields: map[string]string{"type": "x"}}
	if err := a.queue.Enqueue(ev, []string{"events"}); err != nil {
		t.Fatal(err)
	}

	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000")
	pings := make(chan string, 100)
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			pings <- string(buf[:n])
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go systemd.NewNotifier().Watchdog(ctx, a.Healthy, slog.New(slog.DiscardHandler))

	waitPing := func() bool {
		for {
			select {
			case p := <-pings:
				if strings.Contains(p, "WATCHDOG=1") {
					return true
				}
			case <-time.After(500 * time.Millisecond):
				return false
			}
		}
	}
	if !waitPing() {
		t.Fatal("no watchdog ping while the work was fresh")
	}
	// The due delivery now waits longer than maxStall and nothing turns.
	mu.Lock()
	clock = clock.Add(maxStall + time.Minute)
	mu.Unlock()
	if a.Healthy() {
		t.Fatal("Healthy although due work waited past maxStall with no delivery loop")
	}
	// A ping already on its way may arrive; after that, silence.
	waitPing()
	if waitPing() {
		t.Fatal("the watchdog kept pinging for a wedged daemon")
	}
}
