// Package history keeps herald's event history: every event with its
// routing, its noise decisions and the outcome of each delivery, so that
// `herald history` and the status page can answer "what happened, and where
// did it go?". It is a log of JSON lines in segment files under
// STATE/history, bounded by age (retention) and total size: the oldest
// segments are removed first.
//
// The history is a record, not a promise: lines are appended without an
// fsync each (the queue and the spool hold what must survive a crash), and
// a line torn by a crash is skipped when read.
package history

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"herald/internal/event"
	"herald/internal/safeio"
)

// Defaults of herald.cfg's history-retention and history-max-size.
const (
	DefaultRetention = 30 * 24 * time.Hour
	DefaultMaxSize   = 64 << 20
)

// segments are rotated when they reach this share of the maximum size, so
// that removing the oldest one frees a bounded part of the history.
const segmentsPerMax = 8

// Record kinds.
const (
	KindEvent    = "event"
	KindDelivery = "delivery"
)

// Record is one line of the history.
type Record struct {
	Kind string    `json:"kind"`
	Time time.Time `json:"time"`
	// Event records: the event, the targets routing chose and what the
	// noise rules did with each.
	Event   *event.Event `json:"event,omitempty"`
	Targets []string     `json:"targets,omitempty"`
	Noise   []Noise      `json:"noise,omitempty"`
	// Delivery records: one attempt's outcome.
	EventID  string `json:"event_id,omitempty"`
	Target   string `json:"target,omitempty"`
	State    string `json:"state,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Noise is a noise decision as recorded (see internal/noise).
type Noise struct {
	Target string    `json:"target"`
	Rule   string    `json:"rule,omitempty"`
	Action string    `json:"action"`
	Until  time.Time `json:"until,omitzero"`
}

// Options configure a Log.
type Options struct {
	Dir       string
	Retention time.Duration // 0: DefaultRetention
	MaxSize   int64         // 0: DefaultMaxSize
	Logger    *slog.Logger
	Now       func() time.Time
}

// Log appends to the history. Safe for concurrent use.
type Log struct {
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	f       *os.File
	name    string
	size    int64
	pruned  time.Time
	seq     int
	failing bool
}

// Open opens the history directory for appending, creating it when missing.
func Open(opt Options) (*Log, error) {
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.MaxSize <= 0 {
		opt.MaxSize = DefaultMaxSize
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if err := safeio.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	l := &Log{opt: opt, log: opt.Logger}
	l.mu.Lock()
	l.prune()
	l.mu.Unlock()
	return l, nil
}

// Close closes the current segment. A nil Log (no history: it could not
// be opened) does nothing, here and in every method.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Event records an event, its targets and its noise decisions.
func (l *Log) Event(ev *event.Event, targets []string, noise []Noise) {
	if l == nil {
		return
	}
	cp := *ev
	cp.Mail = nil
	l.append(Record{Kind: KindEvent, Time: l.opt.Now(), Event: &cp, Targets: targets, Noise: noise})
}

// Delivery records the outcome of a delivery attempt.
func (l *Log) Delivery(eventID, target, state string, attempts int, errMsg string) {
	if l == nil {
		return
	}
	l.append(Record{Kind: KindDelivery, Time: l.opt.Now(), EventID: eventID, Target: target, State: state,
		Attempts: attempts, Error: errMsg})
}

// append writes one record; a failure is logged once until writes work
// again (the history must never stop deliveries).
func (l *Log) append(r Record) {
	b, err := json.Marshal(r)
	if err != nil {
		l.log.Error("history: cannot encode record", "err", err)
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opt.Now()
	err = l.rotate(now, int64(len(b)))
	if err == nil {
		var n int
		n, err = l.f.Write(b)
		l.size += int64(n)
	}
	if err != nil {
		if !l.failing {
			l.log.Error("history: cannot append; events are still delivered", "err", err)
		}
		l.failing = true
		return
	}
	if l.failing {
		l.log.Info("history: appending works again")
		l.failing = false
	}
	if now.Sub(l.pruned) > time.Minute {
		l.prune()
	}
}

// rotate opens a new segment when there is none, the day changed or the
// current one is full. Caller holds mu.
func (l *Log) rotate(now time.Time, add int64) error {
	day := now.UTC().Format("20060102")
	if l.f != nil && strings.HasPrefix(l.name, day) && l.size+add <= l.opt.MaxSize/segmentsPerMax {
		return nil
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			l.log.Warn("history: closing segment", "err", err)
		}
		l.f = nil
	}
	// The sequence number keeps names unique (and sorted) when the clock
	// stands still or steps back.
	l.seq++
	name := fmt.Sprintf("%s-%s-%06d.jsonl", day, now.UTC().Format("150405.000000000"), l.seq%1000000)
	f, err := safeio.OpenAppend(filepath.Join(l.opt.Dir, name), os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	l.f, l.name, l.size = f, name, 0
	l.prune()
	return nil
}

// prune removes segments older than the retention, then the oldest ones
// while the history is larger than its maximum size. Caller holds mu.
func (l *Log) prune() {
	l.pruned = l.opt.Now()
	segs, err := segments(l.opt.Dir)
	if err != nil {
		l.log.Warn("history: listing segments", "err", err)
		return
	}
	var total int64
	for _, s := range segs {
		total += s.size
	}
	cutoff := l.opt.Now().Add(-l.opt.Retention)
	for _, s := range segs {
		if s.name == l.name {
			break // never the segment being written
		}
		if !s.mod.Before(cutoff) && total <= l.opt.MaxSize {
			break
		}
		if err := os.Remove(filepath.Join(l.opt.Dir, s.name)); err != nil {
			l.log.Warn("history: removing old segment", "segment", s.name, "err", err)
			continue
		}
		total -= s.size
	}
}

type segment struct {
	name string
	size int64
	mod  time.Time
}

// segments lists the segment files, oldest first (their names sort by
// creation time).
func segments(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []segment
	for _, de := range des {
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), ".jsonl") {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		out = append(out, segment{name: de.Name(), size: fi.Size(), mod: fi.ModTime()})
	}
	slices.SortFunc(out, func(a, b segment) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// Entry is one event as the history tells it: when it came, where routing
// sent it, what noise did, and each delivery's latest outcome and its
// attempts.
type Entry struct {
	Event      *event.Event `json:"event"`
	Received   time.Time    `json:"received"`
	Targets    []string     `json:"targets"`
	Noise      []Noise      `json:"noise,omitempty"`
	Deliveries []Delivery   `json:"deliveries"`
}

// Delivery is one target's outcome for an event.
type Delivery struct {
	Target   string    `json:"target"`
	State    string    `json:"state"` // latest: done, pending (retrying), dead, dropped
	Attempts int       `json:"attempts"`
	Time     time.Time `json:"time"`
	Error    string    `json:"error,omitempty"`
}

// Filter selects entries; zero values select everything.
type Filter struct {
	Since    time.Time
	Type     string
	Severity string
	Grep     func(string) bool // matched against title, body and fields
	EventID  string
	Limit    int // newest N (0: all)
}

func (f Filter) match(e *Entry) bool {
	ev := e.Event
	switch {
	case !f.Since.IsZero() && e.Received.Before(f.Since):
		return false
	case f.Type != "" && ev.Type() != f.Type:
		return false
	case f.Severity != "" && ev.Severity.String() != f.Severity:
		return false
	case f.EventID != "" && ev.ID != f.EventID:
		return false
	}
	if f.Grep != nil {
		if f.Grep(ev.Title) || f.Grep(ev.Body) {
			return true
		}
		for k, v := range ev.Fields {
			if f.Grep(k + "=" + v) {
				return true
			}
		}
		return false
	}
	return true
}

// maxLine bounds one history line when reading (an event body is at most
// 1 MiB; JSON escaping can grow it).
const maxLine = 8 << 20

// Read returns the entries of the history in dir that f selects, oldest
// first. A missing directory is an empty history.
//
// Segments are read newest first, and reading stops once f.Limit entries
// are selected (an event's outcomes are never in an older segment than the
// event), so the status page's "recent events" does not parse the whole
// history.
func Read(dir string, f Filter) ([]Entry, error) {
	segs, err := segments(dir)
	if errors.Is(err, os.ErrNotExist) {
		return []Entry{}, nil
	}
	if err != nil {
		return nil, err
	}
	type entry struct {
		Entry
		seq   uint64   // position of its event record: the first one wins
		dseqs []uint64 // position of each delivery's record: the last one wins
	}
	byID := map[string]*entry{}
	// Outcomes read before their event (its record is in an older segment,
	// or, rarely, later in the same one) wait for it.
	type earlyDelivery struct {
		d   Delivery
		seq uint64
	}
	early := map[string][]earlyDelivery{}
	addDelivery := func(e *entry, d Delivery, seq uint64) {
		if i := slices.IndexFunc(e.Deliveries, func(x Delivery) bool { return x.Target == d.Target }); i >= 0 {
			if seq > e.dseqs[i] {
				e.Deliveries[i], e.dseqs[i] = d, seq
			}
			return
		}
		e.Deliveries = append(e.Deliveries, d)
		e.dseqs = append(e.dseqs, seq)
	}
	selected := 0
	for si := len(segs) - 1; si >= 0; si-- {
		s := segs[si]
		if !f.Since.IsZero() && s.mod.Before(f.Since) {
			break // this one and all older ones were last written before the window began
		}
		line := uint64(0)
		if err := readSegment(filepath.Join(dir, s.name), func(r Record) {
			line++
			seq := uint64(si)<<32 | line
			switch r.Kind {
			case KindEvent:
				if r.Event == nil {
					return
				}
				if e := byID[r.Event.ID]; e != nil {
					if seq < e.seq { // an earlier record of the same event
						e.Received, e.Targets, e.Noise, e.seq = r.Time, nonNil(r.Targets), r.Noise, seq
					}
					return
				}
				e := &entry{Entry: Entry{Event: r.Event, Received: r.Time, Targets: nonNil(r.Targets), Noise: r.Noise, Deliveries: []Delivery{}}, seq: seq}
				byID[r.Event.ID] = e
				for _, ed := range early[r.Event.ID] {
					addDelivery(e, ed.d, ed.seq)
				}
				delete(early, r.Event.ID)
				if f.match(&e.Entry) {
					selected++
				}
			case KindDelivery:
				d := Delivery{Target: r.Target, State: r.State, Attempts: r.Attempts, Time: r.Time, Error: r.Error}
				if e := byID[r.EventID]; e != nil {
					addDelivery(e, d, seq)
					return
				}
				early[r.EventID] = append(early[r.EventID], earlyDelivery{d, seq})
			}
		}); err != nil {
			return nil, err
		}
		if f.Limit > 0 && selected >= f.Limit {
			break
		}
	}
	all := make([]*entry, 0, len(byID))
	for _, e := range byID {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]Entry, 0, len(all))
	for _, e := range all {
		if f.match(&e.Entry) {
			out = append(out, e.Entry)
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func readSegment(path string, fn func(Record)) error {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // pruned meanwhile
	}
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r Record
		if json.Unmarshal(line, &r) != nil {
			continue // a line torn by a crash
		}
		fn(r)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("history: %s: %w", filepath.Base(path), err)
	}
	return nil
}
