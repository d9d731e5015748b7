package router

import (
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// Evaluate decides one matcher-shaped rule set for ev at time at, with the
// same semantics and explanation as Route gives each matcher. herald's own
// sections that select events with matcher rules (noise) use it, so their
// rules never drift from the matchers'.
func (r *Router) Evaluate(m *config.Matcher, ev *event.Event, at time.Time) MatcherResult {
	loc := r.Location
	if loc == nil {
		loc = time.Local
	}
	var rules []RuleResult
	var names []string
	return evaluate(m, ev, at.In(loc), &rules, &names)
}
