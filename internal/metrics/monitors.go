package metrics

import "time"

// Monitor is one monitor's figures at scrape time. Monitor names come from
// the configuration, so the series count is bounded by it.
type Monitor struct {
	Name string
	// Up is false while an outage is reported (a heartbeat is down, a
	// usage watch is above its threshold).
	Up bool
	// LastSuccess is the time of the heartbeat's last success; zero for
	// none (then the timestamp series is left out).
	LastSuccess time.Time
}

var (
	famMonitorUp = &family{name: "herald_monitor_up", typ: "gauge",
		help:   "1 while the monitor (heartbeat or usage watch) is up or new, 0 while it is down; paused monitors are left out.",
		labels: []string{"monitor"}}
	famMonitorLastSuccess = &family{name: "herald_monitor_last_success_timestamp_seconds", typ: "gauge",
		help:   "Unix time of the heartbeat's last success (the event's own time); absent before the first.",
		labels: []string{"monitor"}}
)

// SetMonitors sets the monitors' callback; it is called at every scrape,
// outside any lock of Metrics. Calling it again replaces the callback.
func (m *Metrics) SetMonitors(get func() []Monitor) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.monitors = get
	m.mu.Unlock()
}

// writeMonitors writes the monitors' series.
func (m *Metrics) writeMonitors(e *expo) {
	if m == nil {
		return
	}
	m.mu.Lock()
	get := m.monitors
	m.mu.Unlock()
	if get == nil {
		return
	}
	var up, last []sample
	for _, mo := range get() {
		v := 0.0
		if mo.Up {
			v = 1
		}
		name := []string{label(mo.Name)}
		up = append(up, sample{values: name, value: v})
		if !mo.LastSuccess.IsZero() {
			last = append(last, sample{values: name, value: float64(mo.LastSuccess.UnixNano()) / 1e9})
		}
	}
	e.family(famMonitorUp, up)
	e.family(famMonitorLastSuccess, last)
}
