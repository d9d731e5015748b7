// Package monitor holds herald's monitors: heartbeats, which expect a
// success from the events herald routes (or from a Kuma-style push) every
// period or after every scheduled time and raise a down event when none
// comes or when failures pile up; and usage watches, which raise a warning
// when a file system fills up. It notices what did not happen.
//
// The engine is fed every routed event (Feed) and raises its own events by
// submitting them into the spool (Options.Submit), so matchers route them
// like any other. Its state is durable: every change is written atomically
// before anything is reported, and raised events pass through an outbox in
// the same state file (state.go), so a crash at any point neither loses
// nor repeats a down or up event. docs/monitors.md describes the semantics
// and the clock rules.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/safeio"
)

// Source is the spool envelope source of the events the engine raises;
// the daemon keeps their event ID (it is what makes a resubmission after a
// crash a duplicate the delivery queue recognises).
const Source = "monitor"

// maxWait bounds how long the engine sleeps between evaluations, so that a
// step of the wall clock is noticed within this time.
const maxWait = 30 * time.Second

// stepTolerance is how far the wall clock may drift from real elapsed
// time between two evaluations before herald treats it as a clock step
// (or the difference between real and monotonic time as a suspension).
const stepTolerance = 2 * time.Second

// ResumeGrace is the least time given after a resume from suspend to
// heartbeats whose deadline passed while the machine slept: timers that
// catch up after a resume (anacron, systemd Persistent=) report meanwhile.
const ResumeGrace = 5 * time.Minute

// Options configure an Engine. Dir and Submit are required.
type Options struct {
	// Dir holds the state file (STATE/monitors); created when missing.
	Dir string
	// Submit writes an event durably into the spool (source Source, the
	// event's ID kept); an error leaves it in the outbox to retry.
	Submit func(ev *event.Event) error
	Logger *slog.Logger
	// Clock is the time source (default the system's).
	Clock Clock
	// Location is the zone schedules and match-calendar rules are
	// evaluated in (default time.Local).
	Location *time.Location
	// Hostname names this host in raised events' titles.
	Hostname string
	// Statfs reads a file system's usage (default the statfs(2) system
	// call); tests replace it.
	Statfs func(path string) (Usage, error)
	// hook, when set, is called at the named points of a state change;
	// an error aborts there, as a crash would (tests).
	hook func(point string) error
}

// Crash points of a state change, in order (tests inject failures there).
const (
	pointDecided   = "decided"   // a transition is computed, nothing written
	pointCommitted = "committed" // state and outbox written, not yet submitted
	pointSubmitted = "submitted" // outbox event spooled, outbox not yet cleared
)

// Engine runs the monitors of one configuration.
type Engine struct {
	opt   Options
	log   *slog.Logger
	clock Clock
	loc   *time.Location

	mu       sync.Mutex
	cfg      config.Monitors
	hostname string // for raised events' titles; see SetHostname
	st       *fileState
	// lastWall/lastBoot/lastMono are the clock readings of the previous
	// evaluation, to tell clock steps and suspensions.
	lastWall time.Time
	lastBoot time.Duration
	lastMono time.Duration
	// resumed holds the wake-up time after a suspension per heartbeat whose
	// deadline it postponed (not durable: a restart evaluates afresh).
	resumed  map[string]time.Time
	nextPoll map[string]time.Duration // usage watches' next poll (monotonic-driven)
	begun    chan struct{}
	begin    sync.Once
	kick     chan struct{}
}

// Open reads the state in opt.Dir. Configure must follow before Feed.
func Open(opt Options) (*Engine, error) {
	if opt.Dir == "" || opt.Submit == nil {
		return nil, errors.New("monitor: Dir and Submit are required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Clock == nil {
		opt.Clock = NewSystemClock()
	}
	if opt.Location == nil {
		opt.Location = time.Local
	}
	if opt.Statfs == nil {
		opt.Statfs = Statfs
	}
	if err := safeio.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("monitor state directory: %w", err)
	}
	e := &Engine{opt: opt, log: opt.Logger, clock: opt.Clock, loc: opt.Location, hostname: opt.Hostname,
		resumed: map[string]time.Time{}, nextPoll: map[string]time.Duration{},
		begun: make(chan struct{}), kick: make(chan struct{}, 1)}
	st, err := loadState(opt.Dir)
	if err != nil {
		if st == nil {
			return nil, fmt.Errorf("monitor state: %w", err)
		}
		e.log.Error("monitor state", "err", err)
	}
	e.st = st
	e.lastWall, e.lastBoot, e.lastMono = e.clock.Now(), e.clock.Boot(), e.clock.Mono()
	return e, nil
}

// Configure applies a (re)loaded configuration: monitors seen for the
// first time, or enabled again, start their clock now (no alarm for the
// time before they existed), the others keep their state, removed ones are
// forgotten.
// Should the state not be written, the configuration still applies and
// the next evaluation writes it.
func (e *Engine) Configure(m config.Monitors) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cfg = m
	err := e.syncState(e.clock.Now())
	e.wake()
	return err
}

// SetHostname changes the host name raised events' titles name (a reload
// of herald.cfg).
func (e *Engine) SetHostname(h string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hostname = h
}

// syncState gives every configured monitor a state and drops the state of
// monitors no longer configured. Callers hold e.mu.
func (e *Engine) syncState(now time.Time) error {
	return e.update(func(st *fileState) bool {
		changed := false
		seen := map[string]bool{}
		for _, h := range e.cfg.Heartbeats {
			seen[h.Name] = true
			s := st.Heartbeats[h.Name]
			switch {
			case s == nil:
				st.Heartbeats[h.Name] = &hbState{Since: now, Anchor: now, Disabled: h.Disable}
				changed = true
			case s.Disabled != h.Disable:
				// Enabled again: the time it was disabled is not a miss.
				s.Disabled = h.Disable
				if !h.Disable {
					s.Anchor, s.Failures = now, 0
				}
				changed = true
			}
		}
		for name := range st.Heartbeats {
			if !seen[name] {
				delete(st.Heartbeats, name)
				changed = true
			}
		}
		seenU := map[string]bool{}
		for _, u := range e.cfg.Usage {
			seenU[u.Name] = true
			if st.Usage[u.Name] == nil {
				st.Usage[u.Name] = &usageState{}
				changed = true
			}
		}
		for name := range st.Usage {
			if !seenU[name] {
				delete(st.Usage, name)
				changed = true
			}
		}
		return changed
	})
}

// Active reports whether name is a heartbeat that is neither disabled nor
// paused (the push endpoint answers other tokens as Kuma answers the token
// of an inactive monitor).
func (e *Engine) Active(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.cfg.Heartbeat(name)
	s := e.st.Heartbeats[name]
	return h != nil && !h.Disable && (s == nil || !s.Paused)
}

// Begin lets the engine evaluate deadlines. The daemon calls it after its
// first pass over the spool, so that successes that waited there while
// herald was down count before any deadline is judged.
func (e *Engine) Begin() {
	if e == nil {
		return
	}
	e.begin.Do(func() { close(e.begun) })
	e.wake()
}

func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run evaluates deadlines and polls usage watches until ctx ends. It
// waits with the monotonic clock (a timer) but judges deadlines by the
// wall clock, at least every maxWait.
func (e *Engine) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-e.begun:
	}
	for {
		wait := e.tick()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-e.kick:
			t.Stop()
		}
	}
}

// tick runs one evaluation and returns how long to wait for the next.
func (e *Engine) tick() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	now, boot, mono := e.clock.Now(), e.clock.Boot(), e.clock.Mono()
	e.observeClock(now, boot, mono)
	if err := e.syncState(now); err != nil {
		e.log.Error("monitor state not written", "err", err)
	}
	e.flushOutbox()
	next := now.Add(maxWait)
	// Every transition of this evaluation goes into one state write and
	// one pass over the outbox: twenty heartbeats due at the same second
	// cost one fsync of the state, not twenty.
	var down []string
	err := e.update(func(st *fileState) bool {
		changed := false
		for _, h := range e.cfg.Heartbeats {
			at, ok, ch := e.judge(st, h, now)
			if ok && at.Before(next) {
				next = at
			}
			if ch {
				changed = true
				down = append(down, h.Name)
			}
		}
		return changed
	})
	if err != nil {
		e.log.Error("monitor state not written; the alarms are retried", "err", err)
		next = now.Add(5 * time.Second)
	} else {
		for _, name := range down {
			delete(e.resumed, name)
		}
	}
	for _, u := range e.cfg.Usage {
		if at, ok := e.pollUsage(u, now, mono); ok && at.Before(next) {
			next = at
		}
	}
	if len(e.st.Outbox) > 0 && now.Add(5*time.Second).Before(next) {
		next = now.Add(5 * time.Second) // retry a spool that refused
	}
	wait := next.Sub(now)
	return min(max(wait, 10*time.Millisecond), maxWait)
}

// observeClock compares the wall clock with real elapsed time since the
// last evaluation. A step of the wall clock (NTP, an admin's date) moves
// every anchor with it, so each heartbeat keeps the real time it had left:
// a step forward fires nothing early, a step back hides no miss. A
// suspension is real time passing: deadlines that fell into it are judged,
// but not before ResumeGrace (or the heartbeat's own grace) after the
// wake-up.
func (e *Engine) observeClock(now time.Time, boot, mono time.Duration) {
	step := now.Sub(e.lastWall) - (boot - e.lastBoot)
	slept := (boot - e.lastBoot) - (mono - e.lastMono)
	prevWall := e.lastWall
	e.lastWall, e.lastBoot, e.lastMono = now, boot, mono
	if step > stepTolerance || step < -stepTolerance {
		e.log.Warn("wall clock stepped: heartbeat deadlines move with it", "step", step.Round(time.Second).String())
		if err := e.update(func(st *fileState) bool {
			// Every time the state holds was read on the old clock: move
			// them all, so that comparisons with new event times hold.
			for _, s := range st.Heartbeats {
				for _, t := range []*time.Time{&s.Since, &s.Anchor, &s.LastSuccess, &s.LastFailure, &s.DownSince, &s.LastAlert} {
					if !t.IsZero() {
						*t = t.Add(step)
					}
				}
			}
			return len(st.Heartbeats) > 0
		}); err != nil {
			e.log.Error("monitor state not written after a clock step", "err", err)
		}
		for k, v := range e.resumed {
			e.resumed[k] = v.Add(step)
		}
		prevWall = prevWall.Add(step)
	}
	if slept > stepTolerance {
		e.log.Info("resumed from suspend", "slept", slept.Round(time.Second).String())
		for _, h := range e.cfg.Heartbeats {
			s := e.st.Heartbeats[h.Name]
			if s == nil || s.Down {
				continue
			}
			if dl, ok := e.deadline(h, s, h.AlertAfterMissed); ok && !dl.After(now) && dl.After(prevWall) {
				e.resumed[h.Name] = now.Add(max(h.Grace, ResumeGrace))
			}
		}
	}
}

// update applies f to a copy of the state and, when f reports a change,
// writes it durably before it becomes the state in memory; then it submits
// what the outbox holds. Callers hold e.mu.
func (e *Engine) update(f func(st *fileState) bool) error {
	c := e.st.clone()
	if !f(c) {
		return nil
	}
	if err := e.at(pointDecided); err != nil {
		return err
	}
	if err := c.save(e.opt.Dir); err != nil {
		return fmt.Errorf("monitor state: %w", err)
	}
	e.st = c
	if err := e.at(pointCommitted); err != nil {
		return err
	}
	e.flushOutbox()
	return nil
}

func (e *Engine) at(point string) error {
	if e.opt.hook == nil {
		return nil
	}
	return e.opt.hook(point)
}

// flushOutbox submits the outbox's events in order, then removes those
// the spool took from the outbox with one state write. A crash in between
// submits them again after the restart, with the same IDs. Callers hold
// e.mu.
func (e *Engine) flushOutbox() {
	sent := 0
	for _, ev := range e.st.Outbox {
		if err := e.opt.Submit(ev); err != nil {
			e.log.Error("monitor event not spooled yet; it stays in the outbox", "event_id", ev.ID,
				"monitor", ev.Fields[FieldMonitor], "err", err)
			break
		}
		if err := e.at(pointSubmitted); err != nil {
			return
		}
		sent++
		e.log.Info("monitor event raised", "event_id", ev.ID, "monitor", ev.Fields[FieldMonitor],
			"type", ev.Type(), "status", ev.Fields[FieldStatus], "severity", ev.Severity.String())
	}
	if sent == 0 {
		return
	}
	c := e.st.clone()
	c.Outbox = c.Outbox[sent:]
	if err := c.save(e.opt.Dir); err != nil {
		// They are spooled; submitting them again later is harmless (the
		// queue knows their IDs), so only log.
		e.log.Error("monitor state not written after spooling events", "events", sent, "err", err)
		return
	}
	e.st = c
}

// Feed counts ev for every heartbeat it feeds. It returns once the new
// state (and any up or down event it raised) is durable; on error the
// caller keeps the event to feed it again (feeding is idempotent per
// event ID). A nil Engine feeds nothing.
func (e *Engine) Feed(ev *event.Event) error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var fed []*config.Heartbeat
	var outs []Outcome
	for _, h := range e.cfg.Heartbeats {
		if f := classify(h, ev, e.loc, false); f.Outcome != None {
			fed = append(fed, h)
			outs = append(outs, f.Outcome)
		}
	}
	if len(fed) == 0 {
		return nil
	}
	now := e.clock.Now()
	err := e.update(func(st *fileState) bool {
		changed := false
		for i, h := range fed {
			s := st.Heartbeats[h.Name]
			if s == nil || s.Paused || slices.Contains(s.Recent, ev.ID) {
				continue
			}
			changed = true
			if ev.ID != "" {
				s.Recent = append(s.Recent, ev.ID)
				if len(s.Recent) > recentIDs {
					s.Recent = s.Recent[len(s.Recent)-recentIDs:]
				}
			}
			e.feedOne(st, h, s, outs[i], ev, now)
		}
		return changed
	})
	if err == nil {
		e.wake()
	}
	return err
}
