// Package metrics holds the daemon's Prometheus metrics: counters for
// accepted messages, events and delivery outcomes, gauges of the delivery
// queue and the spool read at scrape time, and the Go and process
// collectors, all in a registry of its own (never the global default one).
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
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	reg *prometheus.Registry

	mu         sync.Mutex
	accepted   map[string]uint64
	events     map[typeSeverity]uint64
	types      map[string]struct{} // admitted event types, at most MaxEventTypes
	deliveries map[targetOutcome]uint64
	queue      QueueFunc
	spool      SpoolFunc
	fleet      fleetState
	monitors   *monitorCollector // monitors.go; nil until SetMonitors
}

type typeSeverity struct{ typ, severity string }
type targetOutcome struct{ target, outcome string }

// The metric descriptions.
var (
	descAccepted = prometheus.NewDesc("herald_messages_accepted_total",
		"Messages and events acknowledged to a submitter (durably spooled), by ingest path.",
		[]string{"source"}, nil)
	descEvents = prometheus.NewDesc("herald_events_total",
		"Events made from spool entries and herald's own events, by type and severity.",
		[]string{"type", "severity"}, nil)
	descDeliveries = prometheus.NewDesc("herald_deliveries_total",
		"Delivery attempts by target and outcome (delivered, retry, dead).",
		[]string{"target", "outcome"}, nil)
	descQueue = prometheus.NewDesc("herald_queue_deliveries",
		"Deliveries in the queue by state (pending, inflight, dead).",
		[]string{"state"}, nil)
	descOldest = prometheus.NewDesc("herald_queue_oldest_pending_seconds",
		"Age of the oldest delivery that is neither done nor dead (0 when there is none).",
		nil, nil)
	descSpoolBytes = prometheus.NewDesc("herald_spool_bytes",
		"Bytes of message payload waiting in the spool.", nil, nil)
	descSpoolEntries = prometheus.NewDesc("herald_spool_entries",
		"Committed entries waiting in the spool.", nil, nil)
)

// New returns a Metrics with its own registry holding herald's metrics and
// the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
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
	m.reg.MustRegister(
		(*collector)(m),
		(*fleetCollector)(m),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry, for tests and for registering more
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing collector (a gauge callback that panics, say) must not
		// take the whole scrape down.
		ErrorHandling: promhttp.ContinueOnError,
	})
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

// label makes s a valid, bounded label value: valid UTF-8 (client_golang
// refuses anything else), at most maxLabelLen bytes.
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

// collector exposes Metrics to the registry. The counters are kept in plain
// maps (and exported as constant metrics) rather than in CounterVecs so that
// Snapshot and a scrape read one and the same set of numbers.
type collector Metrics

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAccepted, descEvents, descDeliveries,
		descQueue, descOldest, descSpoolBytes, descSpoolEntries} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := (*Metrics)(c).Snapshot()
	for _, v := range s.Accepted {
		ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(v.Value), v.Labels...)
	}
	for _, v := range s.Events {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(v.Value), v.Labels...)
	}
	for _, v := range s.Deliveries {
		ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(v.Value), v.Labels...)
	}
	if q := s.Queue; q != nil {
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(q.Pending), "pending")
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(q.Inflight), "inflight")
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(q.Dead), "dead")
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, q.OldestPending.Seconds())
	}
	if sp := s.Spool; sp != nil {
		ch <- prometheus.MustNewConstMetric(descSpoolEntries, prometheus.GaugeValue, float64(sp.Entries))
		ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(sp.Bytes))
	}
}
