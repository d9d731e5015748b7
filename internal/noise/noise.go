// Package noise holds herald's noise control, the step between routing and
// the delivery queue: for each (event, target) the routed deliveries pass
// through the first matching `noise:` rule, which delivers at once, counts
// a repeat (dedup-window), holds the delivery until quiet hours end, or
// collects it for a digest. Held and counted state is durable (store.go)
// and written before the decision takes effect, so nothing is lost or
// delivered twice across crashes, restarts and reloads. Released output
// (summaries, digests, held events) goes into the delivery queue with
// stable event IDs, whose idempotent Enqueue makes a repeated release
// harmless. docs/noise.md describes the behaviour.
//
// Locking: one mutex (mu) guards the in-memory index and is held across
// the state writes of one decision or release, so decisions on one window
// are serialised. Enqueue into the delivery queue is called with mu held;
// the queue never calls back into this package.
package noise

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/router"
)

// Enqueuer takes released events; *delivery.Queue is one. Enqueue must be
// durable when it returns nil and idempotent per (event ID, target).
type Enqueuer interface {
	Enqueue(ev *event.Event, targets []string) error
}

// Actions a decision can take.
const (
	ActDeliver = "deliver" // no rule applies, or the rule lets it through
	ActCount   = "count"   // a repeat inside a dedup window
	ActHold    = "hold"    // held until quiet hours end
	ActDigest  = "digest"  // collected for the digest at Until
)

// Decision is what happens to one (event, target) delivery.
type Decision struct {
	Target string    `json:"target"`
	Rule   string    `json:"rule,omitempty"` // the noise rule that applies ("" none)
	Action string    `json:"action"`
	Until  time.Time `json:"until,omitzero"` // hold/digest release, dedup window end
	Reason string    `json:"reason"`
}

// Options configure an Engine.
type Options struct {
	// Dir holds the state (e.g. STATE/noise); created when missing.
	Dir string
	// Queue receives released events. Required unless ReadOnly.
	Queue  Enqueuer
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Location is the zone of quiet hours and digest times (default
	// time.Local, as match-calendar).
	Location *time.Location
	// Hostname goes into digests' hostname field.
	Hostname string
	// ReadOnly loads the state without recovering or changing it
	// (`herald explain` beside a running daemon); Process and Release fail.
	ReadOnly bool
}

// Engine applies the noise rules. Its methods are safe for concurrent use.
type Engine struct {
	opt  Options
	st   store
	log  *slog.Logger
	now  func() time.Time
	loc  *time.Location
	kick chan struct{}

	mu      sync.Mutex
	windows map[string]*window // by key
	held    map[string]*held   // by file name
}

// Open loads (and, unless ReadOnly, recovers) the state in opt.Dir.
func Open(opt Options) (*Engine, error) {
	if opt.Dir == "" {
		return nil, errors.New("noise: no state directory")
	}
	if opt.Queue == nil && !opt.ReadOnly {
		return nil, errors.New("noise: no queue")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Location == nil {
		opt.Location = time.Local
	}
	e := &Engine{opt: opt, st: store{dir: opt.Dir}, log: opt.Logger, now: opt.Now, loc: opt.Location,
		kick: make(chan struct{}, 1), windows: map[string]*window{}, held: map[string]*held{}}
	if !opt.ReadOnly {
		if err := e.st.mkdirs(); err != nil {
			return nil, fmt.Errorf("noise: %w", err)
		}
	}
	if err := e.load(); err != nil {
		if !opt.ReadOnly {
			return nil, fmt.Errorf("noise: %w", err)
		}
		// A reader that may not see the state (explain as an unprivileged
		// user) still gets the rules' decisions, as if nothing were held.
		e.log.Warn("noise state unreadable; deciding as if nothing were held or counted", "err", err)
		e.windows, e.held = map[string]*window{}, map[string]*held{}
	}
	return e, nil
}

func (e *Engine) load() error {
	clean := !e.opt.ReadOnly
	bad := func(sub string) func(string, error) {
		return func(name string, err error) {
			if !clean {
				return
			}
			e.log.Error("unreadable noise state file moved to quarantine", "file", sub+"/"+name, "err", err)
			if qerr := e.st.quarantine(sub, name); qerr != nil {
				e.log.Error("cannot quarantine noise state file", "file", sub+"/"+name, "err", qerr)
			}
		}
	}
	err := e.st.scan(dedupDir, clean, func(name string, data []byte) error {
		w := new(window)
		if err := json.Unmarshal(data, w); err != nil {
			return err
		}
		if w.First == nil || w.key()+".json" != name {
			return errors.New("not a dedup window of this name")
		}
		e.windows[w.key()] = w
		return nil
	}, bad(dedupDir))
	if err != nil {
		return err
	}
	err = e.st.scan(heldDir, clean, func(name string, data []byte) error {
		h := new(held)
		if err := json.Unmarshal(data, h); err != nil {
			return err
		}
		if h.Event == nil || heldName(h.Event.ID, h.Target) != name {
			return errors.New("not a held delivery of this name")
		}
		e.held[name] = h
		return nil
	}, bad(heldDir))
	if err != nil {
		return err
	}
	// A release a crash interrupted: its digest (or event) is queued, some
	// of its held files may remain. They are delivered; remove them.
	return e.st.scan(releasedDir, clean, func(name string, data []byte) error {
		r := new(release)
		if err := json.Unmarshal(data, r); err != nil {
			return err
		}
		for _, m := range r.Members {
			delete(e.held, m)
		}
		if !clean {
			return nil
		}
		if err := e.st.remove(heldDir, r.Members...); err != nil {
			return err
		}
		e.log.Info("finished a release interrupted by a crash", "group", r.Group, "held", len(r.Members))
		return e.st.remove(releasedDir, name)
	}, bad(releasedDir))
}

// rule returns the first enabled noise rule of cfg, in file order, that
// applies to target and selects ev at time at (nil: none).
func rule(cfg *config.Config, ev *event.Event, target string, at time.Time, loc *time.Location) *config.NoiseRule {
	for _, nr := range cfg.Noise {
		if nr.Disable || !nr.AppliesTo(target) {
			continue
		}
		if router.Matches(nr.Select, ev, at, loc) {
			return nr
		}
	}
	return nil
}

// Plan says what Process would do with ev's deliveries to targets at time
// at, given the current state; it changes nothing (herald explain).
func (e *Engine) Plan(cfg *config.Config, ev *event.Event, targets []string, at time.Time) []Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Decision, 0, len(targets))
	for _, t := range targets {
		d, _ := e.decide(cfg, ev, t, at, false)
		out = append(out, d)
	}
	return out
}

// Process applies the noise rules to ev's deliveries to targets (the
// routed ones), recording held and counted ones durably, and returns the
// targets to deliver to now. Decisions are made at the event's timestamp,
// so processing one event twice (a spool entry routed again after a crash)
// decides the same and changes nothing the second time. On error nothing
// the error concerns was recorded: the caller keeps the event and tries
// again.
func (e *Engine) Process(cfg *config.Config, ev *event.Event, targets []string) (now []string, ds []Decision, err error) {
	if e == nil {
		// No engine (its state could not be opened): everything goes at
		// once — more noise, never silence.
		for _, t := range targets {
			ds = append(ds, Decision{Target: t, Action: ActDeliver, Reason: "noise control is not running"})
		}
		return targets, ds, nil
	}
	if e.opt.ReadOnly {
		return nil, nil, errors.New("noise: read-only")
	}
	if len(cfg.Noise) == 0 {
		for _, t := range targets {
			ds = append(ds, Decision{Target: t, Action: ActDeliver, Reason: "no noise rule"})
		}
		return targets, ds, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now = make([]string, 0, len(targets))
	held := false
	for _, t := range targets {
		d, err := e.decide(cfg, ev, t, ev.Timestamp, true)
		if err != nil {
			return nil, nil, err
		}
		ds = append(ds, d)
		if d.Action == ActDeliver {
			now = append(now, t)
		} else {
			held = true
		}
	}
	if held {
		e.Kick()
	}
	return now, ds, nil
}

// decide makes (and with apply, records) the decision for one target.
// Caller holds mu.
func (e *Engine) decide(cfg *config.Config, ev *event.Event, target string, at time.Time, apply bool) (Decision, error) {
	d := Decision{Target: target, Action: ActDeliver, Reason: "no noise rule applies"}
	nr := rule(cfg, ev, target, at, e.loc)
	if nr == nil {
		return d, nil
	}
	d.Rule = nr.Name
	local := at.In(e.loc)
	switch {
	case nr.Dedup > 0:
		return e.decideDedup(nr, ev, target, at, apply, d)
	case nr.Quiet != nil:
		end, in := nr.Quiet.End(local)
		if !in {
			d.Reason = "outside quiet hours " + nr.Quiet.String()
			return d, nil
		}
		if nr.HasBypass && ev.Severity >= nr.Bypass {
			d.Reason = fmt.Sprintf("quiet hours, but severity %s is at least quiet-bypass-severity %s", ev.Severity, nr.Bypass)
			return d, nil
		}
		d.Action, d.Until = ActHold, end
		d.Reason = "quiet hours " + nr.Quiet.String() + ": held until they end"
		return d, e.hold(KindQuiet, nr.Name, ev, target, end, apply)
	case nr.Digest != nil:
		next := nr.Digest.Next(local)
		d.Action, d.Until = ActDigest, next
		d.Reason = "collected for the digest at " + nr.Digest.String()
		return d, e.hold(KindDigest, nr.Name, ev, target, next, apply)
	}
	d.Reason = "noise rule has no action"
	return d, nil
}

func (e *Engine) decideDedup(nr *config.NoiseRule, ev *event.Event, target string, at time.Time, apply bool, d Decision) (Decision, error) {
	fp := fingerprintOf(ev)
	key := dedupKey(nr.Name, target, fp)
	w := e.windows[key]
	if w != nil && !at.Before(w.End) && w.First.ID != ev.ID && !slices.Contains(w.Counted, ev.ID) {
		// The window is over but not yet released (the release loop is
		// behind, or the daemon was down): release it first.
		if !apply {
			d.Reason = fmt.Sprintf("dedup-window %s: the window ending %s is over; this starts a new one", nr.Dedup, w.End.Format(time.RFC3339))
			d.Until = at.Add(nr.Dedup)
			return d, nil
		}
		if err := e.releaseWindow(w); err != nil {
			return d, err
		}
		w = nil
	}
	switch {
	case w == nil:
		d.Until = at.Add(nr.Dedup)
		d.Reason = fmt.Sprintf("dedup-window %s: first of its kind, delivered; repeats until %s are counted", nr.Dedup, d.Until.Format(time.RFC3339))
		if !apply {
			return d, nil
		}
		first := *ev
		first.Mail = nil
		w = &window{Rule: nr.Name, Target: target, FP: fp, First: &first, Start: at, End: at.Add(nr.Dedup)}
		if err := e.st.write(dedupDir, key+".json", w); err != nil {
			return d, fmt.Errorf("noise: record dedup window: %w", err)
		}
		e.windows[key] = w
		e.Kick()
		return d, nil
	case w.First.ID == ev.ID:
		d.Until = w.End
		d.Reason = "dedup-window: the first of its window, delivered"
		return d, nil
	}
	d.Action, d.Until = ActCount, w.End
	d.Reason = fmt.Sprintf("dedup-window %s: repeat of %s, counted (%d so far); one summary at %s", nr.Dedup, w.First.ID, w.Count, w.End.Format(time.RFC3339))
	if !apply || slices.Contains(w.Counted, ev.ID) {
		return d, nil
	}
	nw := *w
	nw.Count++
	nw.Last = ev.Timestamp
	if len(nw.Counted) < maxCountedIDs {
		nw.Counted = append(slices.Clip(w.Counted), ev.ID)
	}
	if err := e.st.write(dedupDir, key+".json", &nw); err != nil {
		return d, fmt.Errorf("noise: record repeat: %w", err)
	}
	*w = nw
	return d, nil
}

// hold records a held delivery (once per event and target).
func (e *Engine) hold(kind, rule string, ev *event.Event, target string, until time.Time, apply bool) error {
	name := heldName(ev.ID, target)
	if !apply {
		return nil
	}
	if _, ok := e.held[name]; ok {
		return nil
	}
	h := &held{Kind: kind, Rule: rule, Target: target, Release: until.UTC()}
	cp := *ev
	cp.Mail = nil
	h.Event = &cp
	if ev.Mail != nil {
		// A copy: the raw mail may be a mapping of its spool entry that
		// ends with the entry's processing, and the hold outlives it.
		h.Mail, h.From, h.Rcpts = bytes.Clone(ev.Mail.Raw), ev.Mail.From, ev.Mail.Recipients
	}
	if err := e.st.write(heldDir, name, h); err != nil {
		return fmt.Errorf("noise: hold delivery: %w", err)
	}
	e.held[name] = h
	return nil
}

// Kick makes Run look for due releases now. It never blocks.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run releases what is due, whenever it is due, until ctx ends. A nil
// Engine returns at once.
func (e *Engine) Run(ctx context.Context) {
	if e == nil {
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := e.Release()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(e.now()), 0)
			if wait > time.Hour {
				wait = time.Hour
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-timer.C:
		}
	}
}

// Item is one held or counted thing, for the status page.
type Item struct {
	Kind     string         `json:"kind"` // KindQuiet, KindDigest or "dedup"
	Rule     string         `json:"rule"`
	Target   string         `json:"target"`
	EventID  string         `json:"event_id"`
	Title    string         `json:"title"`
	Severity event.Severity `json:"severity"`
	Time     time.Time      `json:"time"`
	Release  time.Time      `json:"release"`
	Count    int            `json:"count,omitempty"` // dedup: repeats counted
}

// Items lists what is held or counted now, earliest release first.
func (e *Engine) Items() []Item {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Item
	for _, h := range e.held {
		out = append(out, Item{Kind: h.Kind, Rule: h.Rule, Target: h.Target, EventID: h.Event.ID, Title: h.Event.Title,
			Severity: h.Event.Severity, Time: h.Event.Timestamp, Release: h.Release})
	}
	for _, w := range e.windows {
		out = append(out, Item{Kind: "dedup", Rule: w.Rule, Target: w.Target, EventID: w.First.ID, Title: w.First.Title,
			Severity: w.First.Severity, Time: w.Start, Release: w.End, Count: w.Count})
	}
	slices.SortFunc(out, func(a, b Item) int {
		if c := a.Release.Compare(b.Release); c != 0 {
			return c
		}
		return strings.Compare(a.EventID+a.Target, b.EventID+b.Target)
	})
	return out
}
