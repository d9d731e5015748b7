package app

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"os"
	"path/filepath"

	"herald/internal/event"
	"herald/internal/metrics"
	"herald/internal/monitor"
	"herald/internal/spool"
)

// openMonitors opens the monitor engine on STATE/monitors with the loaded
// configuration. Its events enter the spool like any other event, so that
// matchers route them.
func (a *App) openMonitors() error {
	s := a.Settings()
	e, err := monitor.Open(monitor.Options{
		Dir:      filepath.Join(a.opt.Paths.StateDir, "monitors"),
		Submit:   a.submitMonitorEvent,
		Logger:   a.log,
		Hostname: s.Daemon.Hostname,
	})
	if err != nil {
		return err
	}
	a.monitors = e
	a.metrics.SetMonitors(func() []metrics.Monitor {
		var out []metrics.Monitor
		for _, st := range e.List() {
			if st.State == monitor.StatePaused {
				continue
			}
			m := metrics.Monitor{Name: st.Name, Up: st.State != monitor.StateDown}
			if st.LastSuccess != nil {
				m.LastSuccess = *st.LastSuccess
			}
			out = append(out, m)
		}
		return out
	})
	if err := e.Configure(s.Notify.Monitors); err != nil {
		// The engine retries the write at its next evaluation.
		a.log.Error("monitor state not written", "err", err)
	}
	return nil
}

// submitMonitorEvent spools one event the monitor engine raised, keeping
// its ID (see keepMonitorID).
func (a *App) submitMonitorEvent(ev *event.Event) error {
	line, err := event.JSONLine(ev)
	if err != nil {
		return err
	}
	env := spool.Envelope{Kind: spool.KindEvent, Source: monitor.Source, Received: a.now().UTC()}
	_, err = a.spool.Submit(env, bytes.NewReader(line), int64(len(line)))
	return err
}

// monitorEventID returns the event ID of an entry the daemon's own
// monitor engine wrote: that ID is kept (the decoder ignores submitted
// IDs), so that the same event submitted again after a crash is recognised
// by the delivery queue. Only the daemon's own user writes such entries: a
// submitter never chooses an event ID.
func monitorEventID(e spool.Entry, raw []byte) (string, bool) {
	if e.Env.Source != monitor.Source || e.Env.UID != os.Geteuid() {
		return "", false
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil || v.ID == "" {
		return "", false
	}
	return v.ID, true
}

// pushMonitor resolves a push token to its heartbeat for the push
// endpoint; the token of a disabled or paused heartbeat is answered as Kuma
// answers that of an inactive monitor.
func (a *App) pushMonitor(token string) (string, bool) {
	for _, h := range a.Settings().Notify.Monitors.Heartbeats {
		if !h.PushToken.IsEmpty() && subtle.ConstantTimeCompare([]byte(h.PushToken.Reveal()), []byte(token)) == 1 {
			return h.Name, a.monitors.Active(h.Name)
		}
	}
	return "", false
}

// Monitors returns the monitor engine (status, tests).
func (a *App) Monitors() *monitor.Engine { return a.monitors }

// OfflineMonitors lists the monitors of the configuration in paths as the
// daemon last recorded them in paths' state directory, for `herald monitors`
// while the daemon is not running.
func OfflineMonitors(paths Paths, shimPaths []string) ([]monitor.Status, error) {
	s, err := LoadSettings(paths, shimPaths)
	if err != nil {
		return nil, err
	}
	return monitor.ReadStatus(filepath.Join(paths.StateDir, "monitors"), s.Notify.Monitors, nil)
}
