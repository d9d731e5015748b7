package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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
	descMonitorUp = prometheus.NewDesc("herald_monitor_up",
		"1 while the monitor (heartbeat or usage watch) is up or new, 0 while it is down; paused monitors are left out.",
		[]string{"monitor"}, nil)
	descMonitorLastSuccess = prometheus.NewDesc("herald_monitor_last_success_timestamp_seconds",
		"Unix time of the heartbeat's last success (the event's own time); absent before the first.",
		[]string{"monitor"}, nil)
)

// monitorCollector reads the monitors through a callback at scrape time.
type monitorCollector struct {
	mu  sync.Mutex
	get func() []Monitor
}

// SetMonitors registers the monitors' callback; it is called at every
// scrape, outside any lock of Metrics. Calling it again replaces the
// callback.
func (m *Metrics) SetMonitors(get func() []Monitor) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.monitors == nil {
		m.monitors = &monitorCollector{}
		m.reg.MustRegister(m.monitors)
	}
	m.monitors.mu.Lock()
	m.monitors.get = get
	m.monitors.mu.Unlock()
}

func (c *monitorCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMonitorUp
	ch <- descMonitorLastSuccess
}

func (c *monitorCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	get := c.get
	c.mu.Unlock()
	if get == nil {
		return
	}
	for _, mo := range get() {
		up := 0.0
		if mo.Up {
			up = 1
		}
		name := label(mo.Name)
		ch <- prometheus.MustNewConstMetric(descMonitorUp, prometheus.GaugeValue, up, name)
		if !mo.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(descMonitorLastSuccess, prometheus.GaugeValue,
				float64(mo.LastSuccess.UnixNano())/1e9, name)
		}
	}
}
