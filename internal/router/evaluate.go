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
