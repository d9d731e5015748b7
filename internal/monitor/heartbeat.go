package monitor

// This file holds the heartbeats: what an event Feed hands them does to
// them, when their deadline passes, and the down and up events they raise.

import (
	"fmt"
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// feedOne applies one success or failure at the event's own time.
func (e *Engine) feedOne(st *fileState, h *config.Heartbeat, s *hbState, o Outcome, ev *event.Event, now time.Time) {
	ts := ev.Timestamp
	if ts.IsZero() {
		ts = now
	}
	switch o {
	case Success:
		if !ts.After(s.LastSuccess) {
			return // an older success than one already counted
		}
		s.LastSuccess = ts
		if ts.After(s.Anchor) {
			s.Anchor = ts
		}
		if !ts.Before(s.LastFailure) {
			s.Failures = 0
		}
		delete(e.resumed, h.Name)
		if s.Down {
			st.Outbox = append(st.Outbox, e.upEvent(h, s, now))
			s.Down, s.Reason, s.DownSince, s.LastAlert = false, "", time.Time{}, time.Time{}
		}
	case Failure:
		if ts.After(s.LastFailure) {
			s.LastFailure = ts
		}
		if ts.Before(s.LastSuccess) {
			return // a failure older than the last success ends no streak
		}
		s.Failures++
		if !s.Down && s.Failures >= h.AlertAfterFailures {
			e.goDown(st, h, s, ReasonFailed, now)
		}
	}
}

// goDown marks s down and puts the down event into the outbox.
func (e *Engine) goDown(st *fileState, h *config.Heartbeat, s *hbState, reason string, now time.Time) {
	s.Down, s.Reason, s.DownSince, s.LastAlert = true, reason, now, now
	st.Outbox = append(st.Outbox, e.downEvent(h, s, now, false))
}

// deadline returns when the n-th expected success after the anchor is
// overdue: anchor + n·period + grace, or the n-th scheduled time after
// the anchor + grace.
func (e *Engine) deadline(h *config.Heartbeat, s *hbState, n int) (time.Time, bool) {
	if h.Schedule != nil {
		t := s.Anchor.In(e.loc)
		for range n {
			next, ok := h.Schedule.Next(t)
			if !ok {
				return time.Time{}, false
			}
			t = next
		}
		return t.Add(h.Grace), true
	}
	if h.Period <= 0 {
		return time.Time{}, false
	}
	return s.Anchor.Add(time.Duration(n)*h.Period + h.Grace), true
}

// judge decides one heartbeat at now on st (a copy being prepared for a
// write): it marks it down, or raises a repeat, putting the event into the
// outbox. It returns when the heartbeat next needs judging and whether it
// changed st. Callers hold e.mu.
func (e *Engine) judge(st *fileState, h *config.Heartbeat, now time.Time) (next time.Time, ok, changed bool) {
	s := st.Heartbeats[h.Name]
	if s == nil || s.Paused || h.Disable {
		return time.Time{}, false, false
	}
	if s.Down {
		if h.Repeat <= 0 {
			return time.Time{}, false, false
		}
		if due := s.LastAlert.Add(h.Repeat); now.Before(due) {
			return due, true, false
		}
		s.LastAlert = now
		st.Outbox = append(st.Outbox, e.downEvent(h, s, now, true))
		return now.Add(h.Repeat), true, true
	}
	reason := ReasonFailed
	if s.Failures < h.AlertAfterFailures {
		dl, ok := e.deadline(h, s, h.AlertAfterMissed)
		if !ok {
			return time.Time{}, false, false
		}
		if r, ok := e.resumed[h.Name]; ok && r.After(dl) {
			dl = r
		}
		if now.Before(dl) {
			return dl, true, false
		}
		reason = ReasonMissed
	}
	e.goDown(st, h, s, reason, now)
	if h.Repeat > 0 {
		return now.Add(h.Repeat), true, true
	}
	return time.Time{}, false, true
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func (e *Engine) downEvent(h *config.Heartbeat, s *hbState, now time.Time, repeat bool) *event.Event {
	var title, why string
	if s.Reason == ReasonFailed {
		title = fmt.Sprintf("%s: heartbeat %s is down: %d failures in a row", e.hostname, h.Name, s.Failures)
		why = fmt.Sprintf("It reported %d failures in a row (alert-after-failures %d); the last at %s.",
			s.Failures, h.AlertAfterFailures, fmtTime(s.LastFailure))
	} else {
		title = fmt.Sprintf("%s: heartbeat %s is down: no success since %s", e.hostname, h.Name, fmtTime(s.LastSuccess))
		why = fmt.Sprintf("No success came in time (%s, alert-after-missed %d).", e.timing(h), h.AlertAfterMissed)
	}
	if repeat {
		title += " (still)"
	}
	body := fmt.Sprintf("Heartbeat %s on %s is down.\n%s\nLast success: %s\nDown since: %s\n",
		h.Name, e.hostname, why, fmtTime(s.LastSuccess), fmtTime(s.DownSince))
	if h.Comment != "" {
		body += "Comment: " + h.Comment + "\n"
	}
	return &event.Event{ID: event.NewID(), Timestamp: now.Truncate(time.Second), Severity: event.Error,
		Title: title, Body: body, Fields: map[string]string{
			event.FieldType:  TypeHeartbeat,
			FieldMonitor:     h.Name,
			FieldStatus:      StatusDown,
			FieldReason:      s.Reason,
			FieldLastSuccess: fmtTime(s.LastSuccess),
		}}
}

func (e *Engine) upEvent(h *config.Heartbeat, s *hbState, now time.Time) *event.Event {
	title := fmt.Sprintf("%s: heartbeat %s is up again", e.hostname, h.Name)
	body := fmt.Sprintf("Heartbeat %s on %s is up again.\nLast success: %s\nDown since: %s (%s)\n",
		h.Name, e.hostname, fmtTime(s.LastSuccess), fmtTime(s.DownSince), s.Reason)
	return &event.Event{ID: event.NewID(), Timestamp: now.Truncate(time.Second), Severity: event.Info,
		Title: title, Body: body, Fields: map[string]string{
			event.FieldType:  TypeHeartbeat,
			FieldMonitor:     h.Name,
			FieldStatus:      StatusUp,
			FieldLastSuccess: fmtTime(s.LastSuccess),
			"down-since":     fmtTime(s.DownSince),
		}}
}

func (e *Engine) timing(h *config.Heartbeat) string {
	var t string
	if h.Schedule != nil {
		t = "schedule " + h.Schedule.String()
	} else {
		t = "period " + h.Period.String()
	}
	if h.Grace > 0 {
		t += ", grace " + h.Grace.String()
	}
	return t
}
