package app

import (
	"bytes"
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
	return e.Configure(s.Notify.Monitors)
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

// keepMonitorID reports whether an event entry is one the daemon's own
// monitor engine wrote: its event ID is kept, so that the same event
// submitted again after a crash is recognised by the delivery queue. Only
// the daemon's own user writes such entries (a submitter cannot choose an
// event ID).
func keepMonitorID(e spool.Entry, ev *event.Event) bool {
	return e.Env.Source == monitor.Source && e.Env.UID == os.Geteuid() && ev.ID != ""
}

// pushMonitor resolves a push token to its heartbeat (the push endpoint).
func (a *App) pushMonitor(token string) (string, bool) {
	for _, h := range a.Settings().Notify.Monitors.Heartbeats {
		if !h.PushToken.IsEmpty() && h.PushToken.Reveal() == token {
			return h.Name, true
		}
	}
	return "", false
}

// Monitors returns the monitor engine (status, tests).
func (a *App) Monitors() *monitor.Engine { return a.monitors }
