package systemd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeNotify stands in for systemd's notification socket: a unixgram
// listener in the test's temporary directory, named by NOTIFY_SOCKET.
type fakeNotify struct {
	path string
	conn *net.UnixConn
}

func newFakeNotify(t *testing.T) *fakeNotify {
	t.Helper()
	path := filepath.Join(t.TempDir(), "n.sock")
	t.Setenv("NOTIFY_SOCKET", path)
	f := &fakeNotify{path: path}
	f.listen(t)
	return f
}

func (f *fakeNotify) listen(t *testing.T) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("fake NOTIFY_SOCKET: %v", err)
	}
	f.conn = conn
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close fake NOTIFY_SOCKET: %v", err)
		}
	})
}

// next returns the next datagram, or an error if none arrives within d.
func (f *fakeNotify) next(d time.Duration) (string, error) {
	if err := f.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	n, _, err := f.conn.ReadFromUnix(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func (f *fakeNotify) expect(t *testing.T, want string) {
	t.Helper()
	got, err := f.next(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting 5s for datagram %q: %v", want, err)
	}
	if got != want {
		t.Fatalf("datagram = %q, want %q", got, want)
	}
}

// expectNone fails if any datagram arrives within d.
func (f *fakeNotify) expectNone(t *testing.T, d time.Duration) {
	t.Helper()
	got, err := f.next(d)
	if err == nil {
		t.Fatalf("unexpected datagram %q within %v", got, d)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("reading fake NOTIFY_SOCKET: %v", err)
	}
}

func TestNotifierStates(t *testing.T) {
	tests := []struct {
		name string
		call func(*Notifier) error
		want string
	}{
		{"ready", (*Notifier).Ready, "READY=1\nSTATUS=running"},
		{"stopping", (*Notifier).Stopping, "STOPPING=1\nSTATUS=stopping"},
		{"status", func(n *Notifier) error { return n.Status("42 events queued") }, "STATUS=42 events queued"},
		{"status newline", func(n *Notifier) error { return n.Status("a\nREADY=1\r") }, "STATUS=a READY=1 "},
		{"status empty", func(n *Notifier) error { return n.Status("") }, "STATUS="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNotify(t)
			if err := tt.call(NewNotifier()); err != nil {
				t.Fatalf("notify: %v", err)
			}
			f.expect(t, tt.want)
			f.expectNone(t, 50*time.Millisecond)
		})
	}
}

func TestNotifierReloading(t *testing.T) {
	f := newFakeNotify(t)
	before := monotonicNow(t)
	if err := NewNotifier().Reloading(); err != nil {
		t.Fatalf("Reloading: %v", err)
	}
	after := monotonicNow(t)
	got, err := f.next(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for RELOADING datagram: %v", err)
	}
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[0] != "RELOADING=1" || lines[2] != "STATUS=reloading configuration" ||
		!strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("datagram = %q, want RELOADING=1, MONOTONIC_USEC=<n>, STATUS=reloading configuration", got)
	}
	v, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil {
		t.Fatalf("MONOTONIC_USEC is not a number: %q", lines[1])
	}
	// The value must be CLOCK_MONOTONIC in microseconds, not wall time or
	// nanoseconds: systemd compares it with its own monotonic clock.
	if v < before || v > after {
		t.Fatalf("MONOTONIC_USEC=%d, want between %d and %d (CLOCK_MONOTONIC µs around the call)", v, before, after)
	}
}

func monotonicNow(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Sec*1_000_000 + ts.Nsec/1_000
}

func TestNotifierWithoutSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier()
	for name, call := range map[string]func() error{
		"Ready": n.Ready, "Reloading": n.Reloading, "Stopping": n.Stopping,
		"Status": func() error { return n.Status("x") },
	} {
		if err := call(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET = %v, want nil", name, err)
		}
	}
}

func TestNotifierSocketGone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.sock")
	t.Setenv("NOTIFY_SOCKET", path)
	err := NewNotifier().Ready()
	if err == nil {
		t.Fatal("Ready with a NOTIFY_SOCKET nobody listens on = nil, want an error")
	}
	if !strings.Contains(err.Error(), "sd_notify READY=1") {
		t.Fatalf("error %q does not say which notification failed", err)
	}
}
