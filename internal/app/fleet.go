package app

import (
	"context"
	"path/filepath"
	"time"

	"herald/internal/metrics"
)

// lastEventsFile keeps the last event time per type across restarts
// (STATE/last-events.json, metrics.LastEventsFile), written every saveEvery
// when it changed and at shutdown.
const (
	lastEventsFile = "last-events.json"
	saveEvery      = time.Minute
)

func (a *App) lastEvents() *metrics.LastEventsFile {
	return &metrics.LastEventsFile{Path: filepath.Join(a.opt.Paths.StateDir, lastEventsFile)}
}

// restoreLastEvents seeds the metrics from the saved file.
func (a *App) restoreLastEvents() {
	if err := a.lastEvents().Load(a.metrics); err != nil {
		a.log.Warn("last-event times not restored; the file will be rewritten", "file", a.lastEvents().Path, "err", err)
	}
}

// fleetLoop runs what herald does for a fleet in the background: it
// re-sends firing heartbeat alerts (resendOnce) and saves the last-event
// times, a final time at shutdown.
func (a *App) fleetLoop(ctx context.Context) {
	f := a.lastEvents()
	f.Saved(a.metrics) // restored from it at start-up
	save := func() {
		if err := f.Save(a.metrics); err != nil {
			a.log.Warn("cannot save last-event times", "err", err)
		}
	}
	tick := time.NewTicker(resendTick)
	defer tick.Stop()
	saved := time.Now()
	for {
		a.resendOnce(ctx)
		if time.Since(saved) >= saveEvery {
			save()
			saved = time.Now()
		}
		select {
		case <-ctx.Done():
			save()
			return
		case <-tick.C:
		}
	}
}
