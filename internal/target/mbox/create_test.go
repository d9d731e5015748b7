package mbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/event"
	"herald/internal/target"
)

// TestCreateWith: a missing mailbox is made by the creator (once), never by
// the target itself; a creator that fails is a temporary failure.
func TestCreateWith(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alice")
	calls := 0
	fail := errors.New("mailbox helper not reachable")
	var next error
	tg := New(path, "pve1").CreateWith(func() error {
		calls++
		if next != nil {
			return next
		}
		return os.WriteFile(path, nil, 0o660)
	})
	ev := &event.Event{ID: "e1", Title: "hello", Body: "body", Fields: map[string]string{"type": "x"}}
	next = fail
	err := tg.Deliver(context.Background(), ev)
	if !target.IsTemporary(err) || !strings.Contains(err.Error(), "mailbox helper not reachable") {
		t.Fatalf("creator failing: %v, want a temporary error", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("the target created the mailbox itself")
	}
	next = nil
	for i := 0; i < 2; i++ {
		if err := tg.Deliver(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Fatalf("creator called %d times, want 2 (once failing, once creating)", calls)
	}
	if b, _ := os.ReadFile(path); strings.Count(string(b), "\nFrom ")+boolInt(strings.HasPrefix(string(b), "From ")) != 2 {
		t.Fatalf("mailbox:\n%s", b)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
