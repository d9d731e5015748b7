package app

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"time"

	"herald/internal/safeio"
)

// lastEventsFile keeps herald_last_event_timestamp_seconds across
// restarts (STATE/last-events.json): a host that rebooted must still be
// found silent when its nightly job stopped reporting before the reboot.
// It is metrics, not mail: written every saveEvery when it changed and at
// shutdown; an unreadable file is logged and replaced.
const (
	lastEventsFile = "last-events.json"
	saveEvery      = time.Minute
)

type lastEventsJSON struct {
	Version    int                  `json:"version"`
	LastEvents map[string]time.Time `json:"last_events"`
}

// restoreLastEvents seeds the metrics from the saved file.
func (a *App) restoreLastEvents() {
	path := filepath.Join(a.opt.Paths.StateDir, lastEventsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var f lastEventsJSON
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		a.log.Warn("last-event times not restored; the file will be rewritten", "file", path, "err", err)
		return
	}
	a.metrics.RestoreLastEvents(f.LastEvents)
}

// lastEventsSaver writes the last-event times when they changed since the
// previous write.
type lastEventsSaver struct {
	a     *App
	saved map[string]time.Time
	at    time.Time
}

func (s *lastEventsSaver) save(force bool) {
	if !force && time.Since(s.at) < saveEvery {
		return
	}
	s.at = time.Now()
	cur := s.a.metrics.LastEvents()
	if maps.EqualFunc(cur, s.saved, time.Time.Equal) {
		return
	}
	b, err := json.Marshal(lastEventsJSON{Version: 1, LastEvents: cur})
	if err == nil {
		err = safeio.WriteFile(filepath.Join(s.a.opt.Paths.StateDir, lastEventsFile), b, 0o600)
	}
	if err != nil {
		s.a.log.Warn("cannot save last-event times", "err", err)
		return
	}
	s.saved = cur
}

// fleetLoop runs what herald does for a fleet in the background: it
// re-sends firing heartbeat alerts (resendOnce) and saves the last-event
// times, a final time at shutdown.
func (a *App) fleetLoop(ctx context.Context) {
	saver := &lastEventsSaver{a: a, saved: a.metrics.LastEvents(), at: time.Now()}
	tick := time.NewTicker(resendTick)
	defer tick.Stop()
	for {
		a.resendOnce(ctx)
		saver.save(false)
		select {
		case <-ctx.Done():
			saver.save(true)
			return
		case <-tick.C:
		}
	}
}
