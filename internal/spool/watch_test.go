package spool

// Tests of the spool's change notifications (watch.go).

import (
	"context"
	"strings"
	"testing"
	"time"
)

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: watch channel closed", what)
		}
	case <-time.After(time.Second):
		t.Fatalf("%s: no signal within 1s", what)
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestWatch(t *testing.T) {
	s, state, _ := newSpool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "initial signal")

	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Submit(mailEnv("a@b"), strings.NewReader("x"), 0); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "Submit through another Drop")
	// Let trailing inotify events arrive, then start from a clean slate.
	time.Sleep(50 * time.Millisecond)
	drain(ch)

	if err := d.Kick(); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "Kick")
	if err := d.Kick(); err != nil {
		t.Fatalf("second Kick while one is pending: %v", err)
	}
	if !s.Kicked() {
		t.Fatal("Kicked() = false after Kick")
	}
	if s.Kicked() {
		t.Fatal("Kicked() = true twice for one kick")
	}
	time.Sleep(50 * time.Millisecond)
	drain(ch)

	if _, err := s.Submit(mailEnv("a@b"), strings.NewReader("x"), 0); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "own Submit")

	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed after cancel")
		}
	}
}
