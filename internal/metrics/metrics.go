// Package metrics holds the daemon's Prometheus metrics: counters for
// accepted messages, events and delivery outcomes, gauges of the delivery
// queue and the spool read at scrape time, and the Go runtime's and the
// process's standard series, written in the text exposition format
// (expo.go; docs/metrics.md).
// The same figures are available as plain Go values (Snapshot) for
// `herald status`.
//
// Label values are bounded so that no input can make the series count grow
// without limit: sources, severities and outcomes are fixed sets (anything
// else counts as "other"); event types keep their own name for the first
// MaxEventTypes distinct types and count as "other" after that; target names
// come from the configuration and are kept as they are.
package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxEventTypes bounds the distinct values of the type label of
// herald_events_total: the first MaxEventTypes types seen keep their name,
// later new ones are counted as Other. Event types come from mail
// classification and from whatever local scripts submit, so they are not a
// closed set.
const MaxEventTypes = 100

// Other is the label value that stands for any value outside a label's
// known or admitted set.
const Other = "other"

// maxLabelLen bounds a label value in bytes; longer ones are cut (at a rune
// boundary).
const maxLabelLen = 128

// The known values of the source label.
var sources = []string{"smtp", "sendmail", "notify", "http"}

// The known values of the severity label (event.Severity's names).
var severities = []string{"info", "notice", "warning", "error", "unknown"}

// The known values of the outcome label.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"
	OutcomeDead      = "dead"
)

// QueueFunc reports the delivery queue's figures at scrape time.
type QueueFunc func() (pending, inflight, dead int, oldest time.Duration)

// SpoolFunc reports the spool's figures at scrape time.
type SpoolFunc func() (entries int, bytes int64)

// Metrics is the daemon's set of metrics. Its methods are safe for
// concurrent use. A nil *Metrics ignores counts and sources and has an
// empty Snapshot, so code paths can call it unconditionally.
type Metrics struct {
	mu         sync.Mutex
	accepted   map[string]uint64
	events     map[typeSeverity]uint64
	types      map[string]struct{} // admitted event types, at most MaxEventTypes
	deliveries map[targetOutcome]uint64
	queue      QueueFunc
	spool      SpoolFunc
	fleet      fleetState
	monitors   func() []Monitor // monitors.go; nil until SetMonitors
}

type typeSeverity struct{ typ, severity string }
type targetOutcome struct{ target, outcome string }

// The metric families.
var (
	famAccepted = &family{name: "herald_messages_accepted_total", typ: "counter",
		help:   "Messages and events acknowledged to a submitter (durably spooled), by ingest path.",
		labels: []string{"source"}}
	famEvents = &family{name: "herald_events_total", typ: "counter",
		help:   "Events made from spool entries and herald's own events, by type and severity.",
		labels: []string{"type", "severity"}}
	famDeliveries = &family{name: "herald_deliveries_total", typ: "counter",
		help:   "Delivery attempts by target and outcome (delivered, retry, dead).",
		labels: []string{"target", "outcome"}}
	famQueue = &family{name: "herald_queue_deliveries", typ: "gauge",
		help:   "Deliveries in the queue by state (pending, inflight, dead).",
		labels: []string{"state"}}
	famOldest = &family{name: "herald_queue_oldest_pending_seconds", typ: "gauge",
		help: "Age of the oldest delivery that is neither done nor dead (0 when there is none)."}
	famSpoolBytes = &family{name: "herald_spool_bytes", typ: "gauge",
		help: "Bytes of message payload waiting in the spool."}
	famSpoolEntries = &family{name: "herald_spool_entries", typ: "gauge",
		help: "Committed entries waiting in the spool."}
)

// New returns an empty Metrics.
func New() *Metrics {
	m := &Metrics{
		accepted:   make(map[string]uint64),
		events:     make(map[typeSeverity]uint64),
		types:      make(map[string]struct{}),
		deliveries: make(map[targetOutcome]uint64),
	}
	// Every source is present from the start, so that rate() and alerts on
	// "no mail accepted" work before the first message.
	for _, s := range sources {
		m.accepted[s] = 0
	}
	return m
}

// Accepted counts one message or event acknowledged to its submitter;
// source is "smtp", "sendmail", "notify" or "http" (anything else counts as
// "other").
func (m *Metrics) Accepted(source string) {
	if m == nil {
		return
	}
	if !slices.Contains(sources, source) {
		source = Other
	}
	m.mu.Lock()
	m.accepted[source]++
	m.mu.Unlock()
}

// Event counts one event by its type field and severity name. See
// MaxEventTypes for how the type label is bounded.
func (m *Metrics) Event(typ, severity string) {
	if m == nil {
		return
	}
	if !slices.Contains(severities, severity) {
		severity = Other
	}
	typ = label(typ)
	m.mu.Lock()
	if _, ok := m.types[typ]; !ok {
		if typ == "" || len(m.types) >= MaxEventTypes {
			typ = Other
		} else {
			m.types[typ] = struct{}{}
		}
	}
	m.events[typeSeverity{typ, severity}]++
	m.fleet.seen(typ, time.Now())
	m.mu.Unlock()
}

// Delivery counts one delivery attempt of target. outcome is "delivered",
// "retry" or "dead"; the delivery states a record has after an attempt are
// accepted too ("done" counts as delivered, "pending" as retry), so that
// the queue's OnOutcome hook can pass Delivery.State as it is. Anything else
// counts as "other".
func (m *Metrics) Delivery(target, outcome string) {
	if m == nil {
		return
	}
	switch outcome {
	case OutcomeDelivered, "done":
		outcome = OutcomeDelivered
	case OutcomeRetry, "pending":
		outcome = OutcomeRetry
	case OutcomeDead:
	default:
		outcome = Other
	}
	target = label(target)
	m.mu.Lock()
	m.deliveries[targetOutcome{target, outcome}]++
	m.mu.Unlock()
}

// SetSources sets the callbacks that the queue and spool gauges read at
// every scrape and Snapshot; either may be nil, and its gauges are then
// left out. The callbacks run on the scraping goroutine, so they must be
// safe for concurrent use and quick.
func (m *Metrics) SetSources(queue func() (pending, inflight, dead int, oldest time.Duration), spool func() (entries int, bytes int64)) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.queue, m.spool = queue, spool
	m.mu.Unlock()
}

// label makes s a valid, bounded label value: valid UTF-8 (the exposition
// format allows nothing else), at most maxLabelLen bytes.
func label(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > maxLabelLen {
		n := maxLabelLen
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// Count is one labelled counter value of a Snapshot.
type Count struct {
	// Labels are the label values in the order of the metric's labels:
	// [source] for Accepted, [type, severity] for Events, [target,
	// outcome] for Deliveries.
	Labels []string
	Value  uint64
}

// QueueFigures are the delivery queue's gauges.
type QueueFigures struct {
	Pending, Inflight, Dead int
	OldestPending           time.Duration
}

// SpoolFigures are the spool's gauges.
type SpoolFigures struct {
	Entries int
	Bytes   int64
}

// Snapshot is the daemon's figures as plain values, for `herald status`.
// Counter lists are sorted by their labels.
type Snapshot struct {
	Accepted   []Count
	Events     []Count
	Deliveries []Count
	// Queue and Spool are nil when SetSources gave no callback for them.
	Queue *QueueFigures
	Spool *SpoolFigures
}

// Snapshot returns the current figures: the same values a scrape would show.
func (m *Metrics) Snapshot() Snapshot {
	var s Snapshot
	if m == nil {
		return s
	}
	m.mu.Lock()
	for k, v := range m.accepted {
		s.Accepted = append(s.Accepted, Count{Labels: []string{k}, Value: v})
	}
	for k, v := range m.events {
		s.Events = append(s.Events, Count{Labels: []string{k.typ, k.severity}, Value: v})
	}
	for k, v := range m.deliveries {
		s.Deliveries = append(s.Deliveries, Count{Labels: []string{k.target, k.outcome}, Value: v})
	}
	queue, spool := m.queue, m.spool
	m.mu.Unlock()

	for _, l := range [][]Count{s.Accepted, s.Events, s.Deliveries} {
		slices.SortFunc(l, func(a, b Count) int { return slices.Compare(a.Labels, b.Labels) })
	}
	// The callbacks run outside mu: they take the queue's and spool's own
	// locks and may touch the disk.
	if queue != nil {
		var q QueueFigures
		q.Pending, q.Inflight, q.Dead, q.OldestPending = queue()
		s.Queue = &q
	}
	if spool != nil {
		var sp SpoolFigures
		sp.Entries, sp.Bytes = spool()
		s.Spool = &sp
	}
	return s
}

// writeHerald writes herald's own counters and gauges. The counters are
// kept in plain maps rather than one type per series so that Snapshot and a
// scrape read one and the same set of numbers.
func (m *Metrics) writeHerald(e *expo) {
	s := m.Snapshot()
	counts := func(l []Count) []sample {
		out := make([]sample, len(l))
		for i, v := range l {
			out[i] = sample{values: v.Labels, value: float64(v.Value)}
		}
		return out
	}
	e.family(famAccepted, counts(s.Accepted))
	e.family(famEvents, counts(s.Events))
	e.family(famDeliveries, counts(s.Deliveries))
	if q := s.Queue; q != nil {
		e.family(famQueue, []sample{
			{values: []string{"dead"}, value: float64(q.Dead)},
			{values: []string{"inflight"}, value: float64(q.Inflight)},
			{values: []string{"pending"}, value: float64(q.Pending)},
		})
		e.family(famOldest, one(q.OldestPending.Seconds()))
	}
	if sp := s.Spool; sp != nil {
		e.family(famSpoolBytes, one(float64(sp.Bytes)))
		e.family(famSpoolEntries, one(float64(sp.Entries)))
	}
}
