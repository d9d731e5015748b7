package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/monitor"
)

// fakeDaemon answers every queue and monitor call with err (nil: success).
type fakeDaemon struct {
	err     error
	flushed int
	paused  []string
}

func (f *fakeDaemon) List() ([]delivery.Delivery, error) {
	return []delivery.Delivery{{ID: "e1.t1", EventID: "e1", Target: "t1", State: delivery.StatePending}}, f.err
}

func (f *fakeDaemon) Get(id string) (delivery.Delivery, *event.Event, error) {
	if f.err != nil {
		return delivery.Delivery{}, nil, f.err
	}
	return delivery.Delivery{ID: id}, &event.Event{ID: "e1"}, nil
}

func (f *fakeDaemon) Retry(string) error { return f.err }
func (f *fakeDaemon) Drop(string) error  { return f.err }
func (f *fakeDaemon) Flush() int         { f.flushed++; return 3 }

func (f *fakeDaemon) Monitors() []monitor.Status { return []monitor.Status{{Name: "backup"}} }
func (f *fakeDaemon) Pause(name string) error {
	f.paused = append(f.paused, name)
	return f.err
}
func (f *fakeDaemon) Resume(name string) error { return f.err }

type monitorsOf struct{ *fakeDaemon }

func (m monitorsOf) List() []monitor.Status { return m.fakeDaemon.Monitors() }

// serve starts the control socket for f in a fresh state directory.
func serve(t *testing.T, f *fakeDaemon) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, Socket)
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(Daemon{Queue: f, Monitors: monitorsOf{f}, Status: func() Status {
		return Status{Healthy: false, Problem: "spool entry stuck", SMTP: []string{"127.0.0.1:25"}}
	}})
	stop := Serve(l, path, NewServer(h), func(err error) { t.Errorf("serve: %v", err) })
	t.Cleanup(stop)
	return dir
}

// An error crosses the socket with its kind: the client's error matches the
// sentinel the daemon returned, and keeps the daemon's text.
func TestErrorsKeepTheirKind(t *testing.T) {
	sentinels := []error{delivery.ErrNotFound, delivery.ErrInFlight, delivery.ErrDelivered, monitor.ErrUnknown}
	tests := []struct {
		name string
		err  error
		want error // nil: none of the sentinels
	}{
		{"not found", fmt.Errorf("delivery e1.t1: %w", delivery.ErrNotFound), delivery.ErrNotFound},
		{"in flight", fmt.Errorf("delivery e1.t1: %w", delivery.ErrInFlight), delivery.ErrInFlight},
		{"already delivered", fmt.Errorf("delivery e1.t1: %w", delivery.ErrDelivered), delivery.ErrDelivered},
		{"unknown monitor", fmt.Errorf("%w: backup", monitor.ErrUnknown), monitor.ErrUnknown},
		{"other", errors.New("disk on fire"), nil},
		{"other naming a sentinel's text", errors.New("no such delivery, already delivered"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := serve(t, &fakeDaemon{err: tc.err})
			c, err := Dial(dir)
			if err != nil {
				t.Fatal(err)
			}
			calls := map[string]error{
				"retry": c.Retry("e1.t1"),
				"drop":  c.Drop("e1.t1"),
				"pause": DaemonPauseMonitor(dir, "backup", true),
			}
			_, _, calls["get"] = c.Get("e1.t1")
			for call, got := range calls {
				if got == nil || got.Error() != tc.err.Error() {
					t.Fatalf("%s: err = %v, want the daemon's %q", call, got, tc.err)
				}
				for _, s := range sentinels {
					if errors.Is(got, s) != (s == tc.want) {
						t.Errorf("%s: errors.Is(%v, %v) = %v", call, got, s, !(s == tc.want))
					}
				}
			}
		})
	}
}

func TestClientCalls(t *testing.T) {
	f := &fakeDaemon{}
	dir := serve(t, f)
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := c.List()
	if err != nil || len(ds) != 1 || ds[0].ID != "e1.t1" {
		t.Fatalf("List = %v, %v", ds, err)
	}
	d, ev, err := c.Get("e1.t1")
	if err != nil || d.ID != "e1.t1" || ev == nil || ev.ID != "e1" {
		t.Fatalf("Get = %v, %v, %v", d, ev, err)
	}
	if n, err := c.Flush(); err != nil || n != 3 || f.flushed != 1 {
		t.Fatalf("Flush = %d, %v (flushed %d)", n, err, f.flushed)
	}
	st, err := DaemonStatus(dir)
	if err != nil || st.Healthy || st.Problem != "spool entry stuck" || len(st.SMTP) != 1 {
		t.Fatalf("DaemonStatus = %+v, %v", st, err)
	}
	ms, err := DaemonMonitors(dir)
	if err != nil || len(ms) != 1 || ms[0].Name != "backup" {
		t.Fatalf("DaemonMonitors = %v, %v", ms, err)
	}
	if err := DaemonPauseMonitor(dir, "nightly backup", true); err != nil || len(f.paused) != 1 || f.paused[0] != "nightly backup" {
		t.Fatalf("pause: %v, paused %q", err, f.paused)
	}
	fi, err := os.Stat(filepath.Join(dir, Socket))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v", fi, err)
	}
}

func TestNoDaemon(t *testing.T) {
	dir := t.TempDir()
	if _, err := Dial(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Dial without a daemon: %v", err)
	}
	if _, err := DaemonStatus(dir); err == nil {
		t.Fatal("DaemonStatus without a daemon: no error")
	}
	if _, err := DaemonMailq(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("DaemonMailq without a daemon: %v, want ErrNotRunning", err)
	}
}
