package systemd

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"herald/internal/testkit"
)

// The watchdog interval of these tests: systemd's WatchdogSec=200ms, so a
// ping every 100ms.
const (
	testWatchdogUsec = "200000"
	testWatchdog     = 200 * time.Millisecond
)

func enableWatchdog(t *testing.T) {
	t.Helper()
	t.Setenv("WATCHDOG_USEC", testWatchdogUsec)
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
}

// startWatchdog runs Watchdog in a goroutine and returns a function that
// cancels it and waits (with a deadline) for it to return.
func startWatchdog(t *testing.T, healthy func() bool, log *slog.Logger) (done <-chan struct{}, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		NewNotifier().Watchdog(ctx, healthy, log)
	}()
	stop = func() {
		cancel()
		waitDone(t, ch, "Watchdog to return after cancel")
	}
	t.Cleanup(stop)
	return ch, stop
}

func waitDone(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out after 5s waiting for %s", what)
	}
}

func TestWatchdogPingsWhileHealthyThenStopsForGood(t *testing.T) {
	f := newFakeNotify(t)
	enableWatchdog(t)
	var healthy atomic.Bool
	healthy.Store(true)
	var logBuf testkit.Buffer
	done, _ := startWatchdog(t, healthy.Load, slog.New(slog.NewTextHandler(&logBuf, nil)))

	start := time.Now()
	for i := 0; i < 3; i++ {
		f.expect(t, "WATCHDOG=1")
	}
	// Pings at 0, 100ms, 200ms: three pings cannot take much less than two
	// periods, so Watchdog is pinging at half the interval, not spinning.
	if el := time.Since(start); el < testWatchdog/2*2-30*time.Millisecond {
		t.Fatalf("3 pings in %v: faster than one per %v", el, testWatchdog/2)
	}

	// The daemon wedges: the next check sees it, reports it once and
	// stops. A ping already under way may still arrive before the status.
	healthy.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := f.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the unhealthy status after healthy turned false: %v", err)
		}
		if got == "WATCHDOG=1" {
			continue
		}
		if want := "STATUS=unhealthy: watchdog pings stopped, waiting for systemd to restart herald"; got != want {
			t.Fatalf("datagram = %q, want %q", got, want)
		}
		break
	}
	// Even if the daemon looks healthy again, Watchdog does not resume:
	// systemd is to restart it. No ping for three whole intervals.
	healthy.Store(true)
	f.expectNone(t, 3*testWatchdog)
	waitDone(t, done, "Watchdog to return after giving up")

	if n := strings.Count(logBuf.String(), "no longer pinging"); n != 1 {
		t.Fatalf("logged the unhealthy state %d times, want once; log:\n%s", n, logBuf.String())
	}
}

func TestWatchdogReturnsOnCancel(t *testing.T) {
	f := newFakeNotify(t)
	enableWatchdog(t)
	var logBuf testkit.Buffer
	var checks atomic.Int32
	healthy := func() bool { checks.Add(1); return true }
	_, stop := startWatchdog(t, healthy, slog.New(slog.NewTextHandler(&logBuf, nil)))
	f.expect(t, "WATCHDOG=1")
	stop()
	before := checks.Load()
	f.expectNone(t, testWatchdog)
	if checks.Load() != before {
		t.Fatal("healthy was still called after Watchdog returned")
	}
	if strings.Contains(logBuf.String(), "level=ERROR") {
		t.Fatalf("a clean shutdown logged an error:\n%s", logBuf.String())
	}
}

func TestWatchdogNotEnabled(t *testing.T) {
	tests := []struct {
		name, usec, pid string
		wantLog         string // "" = nothing at error level
	}{
		{"no WATCHDOG_USEC", "", "", ""},
		{"other process", testWatchdogUsec, strconv.Itoa(os.Getpid() + 1), ""},
		{"malformed usec", "soon", "", "WATCHDOG_USEC"},
		{"negative usec", "-5", "", "positive"},
		{"malformed pid", testWatchdogUsec, "me", "WATCHDOG_PID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNotify(t)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			var logBuf testkit.Buffer
			called := false
			done, _ := startWatchdog(t, func() bool { called = true; return true },
				slog.New(slog.NewTextHandler(&logBuf, nil)))
			waitDone(t, done, "Watchdog to return at once when the watchdog is off")
			if called {
				t.Error("healthy was called although the watchdog is off")
			}
			f.expectNone(t, 50*time.Millisecond)
			log := logBuf.String()
			if tt.wantLog == "" && log != "" {
				t.Errorf("unexpected log:\n%s", log)
			}
			if tt.wantLog != "" && !strings.Contains(log, tt.wantLog) {
				t.Errorf("log %q does not mention %q", log, tt.wantLog)
			}
		})
	}
}

// A ping that cannot be sent is logged when it starts failing and when it
// works again, not on every tick.
func TestWatchdogLogsPingFailuresOnChange(t *testing.T) {
	f := &fakeNotify{path: t.TempDir() + "/n.sock"}
	t.Setenv("NOTIFY_SOCKET", f.path) // nobody listens yet
	enableWatchdog(t)
	var logBuf testkit.Buffer
	checks := make(chan struct{}, 100)
	healthy := func() bool {
		select { // never block Watchdog, even once the test stops reading
		case checks <- struct{}{}:
		default:
		}
		return true
	}
	startWatchdog(t, healthy, slog.New(slog.NewTextHandler(&logBuf, nil)))
	for i := 0; i < 4; i++ {
		select {
		case <-checks:
		case <-time.After(5 * time.Second):
			t.Fatalf("Watchdog made only %d checks in 5s", i)
		}
	}
	if n := strings.Count(logBuf.String(), "ping failed"); n != 1 {
		t.Fatalf("after 4 failed pings the failure was logged %d times, want once; log:\n%s", n, logBuf.String())
	}
	f.listen(t)
	f.expect(t, "WATCHDOG=1")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logBuf.String(), "pings delivered again") {
		if time.Now().After(deadline) {
			t.Fatalf("recovery not logged within 5s; log:\n%s", logBuf.String())
		}
		select {
		case <-checks:
		case <-time.After(time.Second):
		}
	}
}
