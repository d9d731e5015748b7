package mbox

// Tests of the mailbox locks (lock.go).

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/target"
)

func TestDotLockIsHonoured(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	tg := newTarget(t, path)
	lock := path + ".lock"
	// PID 1 always runs: the lock is held by a live process.
	if err := os.WriteFile(lock, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Held until the deadline: a temporary failure, nothing written.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := tg.Deliver(ctx, mailEvent())
	if err == nil || !target.IsTemporary(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver under a held lock file = %v, want a temporary deadline error", err)
	}
	if !strings.Contains(err.Error(), "lock file") {
		t.Errorf("error does not say what is locked: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || len(b) != 0 {
		t.Fatalf("mailbox written under someone else's lock: %q, %v", b, err)
	}

	// Removed while Deliver waits: it proceeds.
	done := make(chan error, 1)
	go func() { done <- tg.Deliver(t.Context(), mailEvent()) }()
	// The delay only lets Deliver start waiting; the test passes either way.
	time.AfterFunc(100*time.Millisecond, func() { _ = os.Remove(lock) })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver did not proceed within 10s after the lock file was removed")
	}
	if ok, err := tg.Delivered(t.Context(), mailEvent()); err != nil || !ok {
		t.Fatalf("Delivered = %v, %v", ok, err)
	}
}

func TestStaleDotLockIsRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	tg := newTarget(t, path)
	lock := path + ".lock"
	if err := os.WriteFile(lock, []byte("99999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-StaleLockAge - time.Minute)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := tg.Deliver(ctx, mailEvent()); err != nil {
		t.Fatalf("Deliver with a stale lock file: %v", err)
	}
	if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale lock file still there: %v", err)
	}
}

// TestDeadOwnersLockIsStaleAtOnce: a fresh lock file naming a process that
// has exited (a daemon killed mid-delivery) does not hold up delivery for
// StaleLockAge; one without a pid, or naming a live process, still does.
func TestDeadOwnersLockIsStaleAtOnce(t *testing.T) {
	cmd := osexec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("cannot run true: %v", err)
	}
	deadPID := cmd.Process.Pid // reaped: no process has it (until the PID wraps)
	for _, tc := range []struct {
		name    string
		content string
		stale   bool
	}{
		{"dead pid", strconv.Itoa(deadPID) + "\n", true},
		{"dead pid without newline", strconv.Itoa(deadPID), true},
		{"live pid", strconv.Itoa(os.Getpid()) + "\n", false},
		{"no pid", "", false},
		{"not a pid", "locked by someone\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "root")
			tg := newTarget(t, path)
			lock := path + ".lock"
			if err := os.WriteFile(lock, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			err := tg.Deliver(ctx, mailEvent())
			if tc.stale {
				if err != nil {
					t.Fatalf("Deliver with a lock of a dead process: %v (want it taken as stale at once)", err)
				}
				if ok, err := tg.Delivered(t.Context(), mailEvent()); err != nil || !ok {
					t.Fatalf("Delivered = %v, %v", ok, err)
				}
				return
			}
			if err == nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Deliver under a held lock file = %v, want a deadline error", err)
			}
			if _, err := os.Stat(lock); err != nil {
				t.Errorf("a held lock file was removed: %v", err)
			}
		})
	}
}

func TestFcntlLockIsHonoured(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	holder, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	// A classic POSIX record lock, as mutt or procmail would hold it.
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(holder.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(t, path)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err = tg.Deliver(ctx, mailEvent())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver under a held fcntl lock = %v, want a deadline error", err)
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dot-lock taken or left while the fcntl lock was busy: %v", err)
	}
	lk.Type = unix.F_UNLCK
	if err := unix.FcntlFlock(holder.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if err := tg.Deliver(t.Context(), mailEvent()); err != nil {
		t.Fatalf("Deliver after the fcntl lock was released: %v", err)
	}
}

func TestConcurrentDeliveriesStaySeparate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			ev := renderedEvent()
			ev.ID = "ev-" + string(rune('a'+i))
			ev.Body = strings.Repeat("From line body\n", 2000)
			errs <- newTarget(t, path).Deliver(t.Context(), ev)
		}()
	}
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("concurrent deliveries did not finish within 30s")
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msgs := splitMessages(t, b)
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if _, err := mail.ReadMessage(bytes.NewReader(m)); err != nil {
			t.Errorf("message %d unreadable: %v", i, err)
		}
	}
}
