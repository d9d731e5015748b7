package app

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/monitor"
)

// The status page's monitors section shows every heartbeat and usage watch
// the engine runs, with its state and what is known of it.
func TestWebMonitorsListsTheEngine(t *testing.T) {
	cfg, err := config.Parse("n.cfg", []byte("heartbeat: nightly\n\tmatch-field exact:type=vzdump\n\tperiod 24h\n\tcomment backup of pve1\n\n"+
		"usage: root-fs\n\tpath /\n\tthreshold 99\n\tinterval 1m\n"), "p.cfg", nil, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := monitor.Open(monitor.Options{Dir: filepath.Join(t.TempDir(), "monitors"), Logger: slog.New(slog.DiscardHandler),
		Submit: func(*event.Event) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Configure(cfg.Monitors); err != nil {
		t.Fatal(err)
	}
	got := webMonitors{e}.Monitors()
	if len(got) != 2 || got[0].Name != "nightly" || got[1].Name != "root-fs" {
		t.Fatalf("monitors on the page: %+v", got)
	}
	if got[0].State == "" || !strings.Contains(got[0].Detail, "backup of pve1") {
		t.Errorf("heartbeat shown as %+v", got[0])
	}
}
