package router

import (
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// Evaluate decides one matcher for ev at time at, evaluated in loc (nil
// means time.Local), with exactly Route's rules. Heartbeats use it for their
// match-* lines, so that a rule means the same in a heartbeat as in a
// matcher.
func Evaluate(m *config.Matcher, ev *event.Event, at time.Time, loc *time.Location) MatcherResult {
	if loc == nil {
		loc = time.Local
	}
	var rules []RuleResult
	var names []string
	return evaluate(m, ev, at.In(loc), &rules, &names)
}
