package router

import (
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// Evaluate decides one matcher-shaped rule set for ev at time at, evaluated
// in loc (nil means time.Local), with exactly Route's rules and
// explanation. herald's own sections that select events with matcher rules
// (heartbeats, noise) use it, so that their rules never drift from the
// matchers'.
func Evaluate(m *config.Matcher, ev *event.Event, at time.Time, loc *time.Location) MatcherResult {
	if loc == nil {
		loc = time.Local
	}
	var rules []RuleResult
	var names []string
	return evaluate(m, ev, at.In(loc), &rules, &names)
}

// Evaluate is the package's Evaluate in the router's Location.
func (r *Router) Evaluate(m *config.Matcher, ev *event.Event, at time.Time) MatcherResult {
	return Evaluate(m, ev, at, r.Location)
}

// Matches reports whether m selects ev at time at, evaluated in loc (nil
// means time.Local): Evaluate(m, ev, at, loc).Matched without the
// explanation and without allocating, for the daemon's per-event checks
// (noise rules, heartbeats).
func Matches(m *config.Matcher, ev *event.Event, at time.Time, loc *time.Location) bool {
	if m.Disable {
		return false
	}
	if !m.HasRules() {
		return true // even inverted
	}
	anyMode := m.Mode == "any"
	acc := matchesAll(m, ev, at, loc)
	if anyMode {
		acc = matchesAny(m, ev, at, loc)
	}
	return acc != m.Invert
}

// matchesAll reports whether every rule line of m holds.
func matchesAll(m *config.Matcher, ev *event.Event, at time.Time, loc *time.Location) bool {
	for _, r := range m.Severity {
		if !r.Match(ev) {
			return false
		}
	}
	for _, r := range m.Fields {
		if !r.Match(ev) {
			return false
		}
	}
	if len(m.Calendar) > 0 {
		day, minute := clock(at, loc)
		for _, r := range m.Calendar {
			if !r.MatchClock(day, minute) {
				return false
			}
		}
	}
	return true
}

// matchesAny reports whether some rule line of m holds.
func matchesAny(m *config.Matcher, ev *event.Event, at time.Time, loc *time.Location) bool {
	for _, r := range m.Severity {
		if r.Match(ev) {
			return true
		}
	}
	for _, r := range m.Fields {
		if r.Match(ev) {
			return true
		}
	}
	if len(m.Calendar) > 0 {
		day, minute := clock(at, loc)
		for _, r := range m.Calendar {
			if r.MatchClock(day, minute) {
				return true
			}
		}
	}
	return false
}

// clock returns the weekday and the minute of the day of at in loc (nil:
// time.Local), what match-calendar windows compare.
func clock(at time.Time, loc *time.Location) (time.Weekday, int) {
	if loc == nil {
		loc = time.Local
	}
	local := at.In(loc)
	h, m, _ := local.Clock()
	return local.Weekday(), h*60 + m
}
