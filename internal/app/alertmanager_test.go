package app

import (
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"herald/internal/event"
	"herald/internal/target/alertmanager"
	"herald/internal/target/build"
)

// An alertmanager target brings one queue target per member (named by
// alertmanager.MemberTarget, wrapped for rendering like every target);
// `herald check` builds it without touching the state directory.
func TestAlertmanagerMemberTargets(t *testing.T) {
	cfgDir, state := t.TempDir(), t.TempDir()
	urls := []string{"http://127.0.0.1:9093", "http://127.0.0.1:9095"}
	cfg := "alertmanager: am\n\turl " + urls[0] + "\n\turl " + urls[1] + "\n\nmatcher: all\n\ttarget am\n"
	if err := os.WriteFile(filepath.Join(cfgDir, "notifications.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(Paths{ConfigDir: cfgDir, StateDir: state}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if warns, err := CheckTargets(s); err != nil || len(warns) != 0 {
		t.Fatal(warns, err)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Fatalf("herald check wrote into the state directory: %v", entries)
	}
	env := build.Env{StateDir: state, Enqueue: func(*event.Event, []string) error { return nil }}
	ts, warns, err := buildTargets(s, slog.New(slog.DiscardHandler), env)
	if err != nil || len(warns) != 0 {
		t.Fatal(warns, err)
	}
	want := []string{"am", alertmanager.MemberTarget("am", urls[0]), alertmanager.MemberTarget("am", urls[1]), "mail-to-root"}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(ts)); !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	if _, ok := build.Unwrap(ts["am"]).(*alertmanager.Target); !ok {
		t.Fatalf("am is %T underneath", build.Unwrap(ts["am"]))
	}
}
