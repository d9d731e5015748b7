package metrics

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"herald/internal/version"
)

// Fleet metrics: what a central Prometheus scraping many herald hosts
// needs to alert on silence as well as on failure (docs/alertmanager.md
// has the example rules). The queue's age and dead letters are
// herald_queue_oldest_pending_seconds and herald_queue_deliveries{state="dead"};
// these add when each event type was last seen and which host an
// instance is.
var (
	famLastEvent = &family{name: "herald_last_event_timestamp_seconds", typ: "gauge",
		help: "Unix time at which herald last made an event of this type (types bounded as in herald_events_total). " +
			"time() minus this finds a job that stopped reporting.",
		labels: []string{"type"}}
	famInfo = &family{name: "herald_info", typ: "gauge",
		help:   "Always 1; labels the instance with the host name herald puts into its events and herald's version.",
		labels: []string{"hostname", "version"}}
)

// fleetState is kept under Metrics.mu.
type fleetState struct {
	lastEvent map[string]time.Time // by bounded type label
	hostname  string
}

// seen records an event of the (already bounded) type typ now.
func (f *fleetState) seen(typ string, now time.Time) {
	if f.lastEvent == nil {
		f.lastEvent = make(map[string]time.Time)
	}
	f.lastEvent[typ] = now
}

// SetHostname sets the hostname label of herald_info (herald.cfg's
// hostname, the one events carry).
func (m *Metrics) SetHostname(h string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.fleet.hostname = label(h)
	m.mu.Unlock()
}

// LastEvents returns when each event type was last seen.
func (m *Metrics) LastEvents() map[string]time.Time {
	out := map[string]time.Time{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.fleet.lastEvent {
		out[k] = v
	}
	return out
}

// writeFleet writes the fleet metrics.
func (m *Metrics) writeFleet(e *expo) {
	last := m.LastEvents()
	host := ""
	if m != nil {
		m.mu.Lock()
		host = m.fleet.hostname
		m.mu.Unlock()
	}
	var s []sample
	for typ, t := range last {
		s = append(s, sample{values: []string{typ}, value: float64(t.UnixMilli()) / 1000})
	}
	e.family(famLastEvent, s)
	e.family(famInfo, []sample{{values: []string{host, label(version.Version)}, value: 1}})
}

// RestoreLastEvents seeds the last-event times, e.g. with those saved
// before a restart, so that "no backup for two days" still fires when the
// host rebooted in between. A type seen since keeps its newer time; types
// are bounded as Event bounds them, the most recent ones first.
func (m *Metrics) RestoreLastEvents(last map[string]time.Time) {
	if m == nil {
		return
	}
	types := slices.SortedFunc(maps.Keys(last), func(a, b string) int {
		return cmp.Or(last[b].Compare(last[a]), strings.Compare(a, b))
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, typ := range types {
		t := last[typ]
		typ = label(typ)
		if typ == "" {
			continue
		}
		if _, ok := m.types[typ]; !ok && typ != Other {
			if len(m.types) >= MaxEventTypes {
				continue
			}
			m.types[typ] = struct{}{}
		}
		if cur, ok := m.fleet.lastEvent[typ]; !ok || t.After(cur) {
			m.fleet.seen(typ, t)
		}
	}
}
