package app

import (
	"net/http"
	"path/filepath"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/history"
	"herald/internal/monitor"
	"herald/internal/noise"
	"herald/internal/web"
)

// State subdirectories of noise control and the event history.
const (
	NoiseDir   = "noise"
	HistoryDir = "history"
)

// openNoise opens the event history and the noise state of the daemon.
// Either may fail without stopping the daemon: it then runs without it
// (nil, whose methods do nothing or deliver at once), with an error logged.
func (a *App) openNoise() {
	s := a.Settings()
	h, err := history.Open(history.Options{
		Dir:       filepath.Join(a.opt.Paths.StateDir, HistoryDir),
		Retention: s.Daemon.HistoryRetention,
		MaxSize:   s.Daemon.HistoryMaxSize,
		Logger:    a.log,
		Now:       a.now,
	})
	if err != nil {
		// Degrade: events are routed and delivered without a history.
		a.log.Error("event history unavailable; herald history and the status page show nothing new", "err", err)
		h = nil
	}
	a.history = h
	n, err := noise.Open(noise.Options{
		Dir:      filepath.Join(a.opt.Paths.StateDir, NoiseDir),
		Queue:    releaseSink{a},
		Logger:   a.log,
		Now:      a.now,
		Hostname: s.Daemon.Hostname,
	})
	if err != nil {
		// Degrade: without its state noise control cannot hold anything
		// safely, so every delivery goes at once; what is held on disk is
		// released by the next start that can read it.
		a.log.Error("noise control unavailable: delivering everything at once", "err", err)
		n = nil
	}
	a.noise = n
}

// Noise returns the noise engine (tests, the status page).
func (a *App) Noise() *noise.Engine { return a.noise }

// releaseSink queues what noise control releases (summaries, digests,
// held events) and records it in the history.
type releaseSink struct{ a *App }

func (r releaseSink) Enqueue(ev *event.Event, targets []string) error {
	// A held event released on its own is in the history already; a
	// summary or digest is new. Recorded before it is queued, as ingest
	// does; a release repeated after a failure records the same ID again,
	// which the history reads once.
	fresh := ev.Type() == "digest" || ev.Fields["repeated"] != ""
	if fresh {
		r.a.history.Event(ev, targets, nil)
	}
	if err := r.a.queue.Enqueue(ev, targets); err != nil {
		return err
	}
	if fresh {
		r.a.metrics.Event(ev.Type(), ev.Severity.String())
	}
	return nil
}

// noiseRecords converts noise decisions for the history.
func noiseRecords(ds []noise.Decision) []history.Noise {
	var out []history.Noise
	for _, d := range ds {
		if d.Rule == "" {
			continue
		}
		out = append(out, history.Noise{Target: d.Target, Rule: d.Rule, Action: d.Action, Until: d.Until})
	}
	return out
}

// recordOutcome puts a delivery attempt's outcome into the history.
func (a *App) recordOutcome(d delivery.Delivery) {
	a.history.Delivery(d.EventID, d.Target, d.State, d.Attempts, d.LastError)
}

// webMonitors shows the heartbeats and usage watches on the status page.
type webMonitors struct{ e *monitor.Engine }

func (w webMonitors) Monitors() []web.Monitor { return web.MonitorRows(w.e.List()) }

// webHandler builds the status page, or nil (logged) when its token cannot
// be had: the rest of the HTTP listener works without it.
func (a *App) webHandler() http.Handler {
	tok, err := web.LoadOrCreateToken(a.opt.Paths.StateDir)
	if err != nil {
		a.log.Error("status page disabled: no access token", "err", err)
		return nil
	}
	dir := filepath.Join(a.opt.Paths.StateDir, HistoryDir)
	return web.New(web.Options{
		Token:    tok,
		Hostname: a.Settings().Daemon.Hostname,
		History:  func(f history.Filter) ([]history.Entry, error) { return history.Read(dir, f) },
		Queue:    webQueue{a},
		Held:     a.noise.Items,
		Monitors: webMonitors{a.monitors},
		Logger:   a.log,
		Now:      a.now,
	})
}

// webQueue is the queue as the status page acts on it: a drop is recorded
// in the history.
type webQueue struct{ a *App }

func (q webQueue) List() ([]delivery.Delivery, error) { return q.a.queue.List() }
func (q webQueue) Retry(id string) error              { return q.a.queue.Retry(id) }
func (q webQueue) Drop(id string) error {
	d, _, _ := q.a.queue.Get(id)
	if err := q.a.queue.Drop(id); err != nil {
		return err
	}
	q.a.history.Delivery(d.EventID, d.Target, "dropped", d.Attempts, "dropped on the status page")
	return nil
}
