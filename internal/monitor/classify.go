package monitor

import (
	"fmt"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/router"
)

// Event types and fields of the events herald raises for monitors, and of
// the push events that feed them. Other components (the Alertmanager
// target) read them by these names: keep them.
const (
	TypeHeartbeat = "heartbeat"
	TypeUsage     = "usage"
	// TypePush is the type of the events the push endpoint spools; its
	// FieldMonitor names the heartbeat whose token was used.
	TypePush = "push"

	FieldMonitor     = "monitor"
	FieldStatus      = "status" // heartbeat: down|up; push: up|down
	FieldReason      = "reason" // heartbeat down: missed|failed
	FieldLastSuccess = "last-success"
	FieldPath        = "path"
	FieldUsedPercent = "used-percent"

	StatusUp     = "up"
	StatusDown   = "down"
	ReasonMissed = "missed"
	ReasonFailed = "failed"
)

// Outcome is what one event means for one heartbeat.
type Outcome int

// The outcomes.
const (
	None Outcome = iota
	Success
	Failure
)

// String returns "none", "success" or "failure".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	}
	return "none"
}

// MarshalText implements encoding.TextMarshaler.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Feeding is one heartbeat's verdict on an event, with the reason, as
// `herald explain` prints it.
type Feeding struct {
	Heartbeat string                `json:"heartbeat"`
	Outcome   Outcome               `json:"outcome"`
	Reason    string                `json:"reason"`
	Rules     *router.MatcherResult `json:"rules,omitempty"`
}

// Classify decides what ev means for heartbeat h: a success, a failure or
// nothing. It is pure; the daemon and `herald explain` share it. Rules are
// evaluated at the event's own time in loc (nil: time.Local).
//
//   - herald's own heartbeat events never feed a heartbeat;
//   - a push event of h's own token is a success (status up) or a failure;
//   - otherwise h's match-* rules select the event exactly as a matcher's
//     would, except that a heartbeat without rules selects nothing;
//   - a selected event is a failure when its severity is in
//     failure-severity (default warning, error), else a success. That
//     makes an unclassified mail (severity unknown) that the rules select,
//     say by its subject, a success unless failure-severity lists unknown.
func Classify(h *config.Heartbeat, ev *event.Event, loc *time.Location) Feeding {
	return classify(h, ev, loc, true)
}

// classify is Classify; without explain it decides the same outcome but
// leaves Rules empty and builds no sentence for a selected event, which is
// all the daemon's Feed needs for every heartbeat on every event.
func classify(h *config.Heartbeat, ev *event.Event, loc *time.Location, explain bool) Feeding {
	f := Feeding{Heartbeat: h.Name}
	switch {
	case h.Disable:
		f.Reason = "heartbeat is disabled"
		return f
	case ev.Type() == TypeHeartbeat:
		f.Reason = "herald's own heartbeat events never feed a heartbeat"
		return f
	case ev.Type() == TypePush && ev.Fields[FieldMonitor] == h.Name && !h.PushToken.IsEmpty():
		f.Outcome, f.Reason = Success, "push with this heartbeat's token, status up"
		if ev.Fields[FieldStatus] != StatusUp {
			f.Outcome, f.Reason = Failure, "push with this heartbeat's token, status "+ev.Fields[FieldStatus]
		}
		return f
	case !h.Rules.HasRules():
		f.Reason = "no match-* rules: only its push token feeds it"
		return f
	}
	if !explain {
		switch {
		case !router.Matches(h.Rules, ev, ev.Timestamp, loc):
		case h.IsFailure(ev.Severity):
			f.Outcome = Failure
		default:
			f.Outcome = Success
		}
		return f
	}
	mr := router.Evaluate(h.Rules, ev, ev.Timestamp, loc)
	f.Rules = &mr
	if !mr.Matched {
		f.Reason = "rules do not match: " + mr.Reason
		return f
	}
	switch {
	case h.IsFailure(ev.Severity):
		f.Outcome = Failure
		f.Reason = fmt.Sprintf("rules match; severity %s is a failure", ev.Severity)
	default:
		f.Outcome = Success
		f.Reason = fmt.Sprintf("rules match; severity %s is a success", ev.Severity)
	}
	return f
}

// Explain returns every heartbeat's verdict on ev, config order.
func Explain(m config.Monitors, ev *event.Event, loc *time.Location) []Feeding {
	out := make([]Feeding, 0, len(m.Heartbeats))
	for _, h := range m.Heartbeats {
		out = append(out, Classify(h, ev, loc))
	}
	return out
}
