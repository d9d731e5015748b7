package match

import (
	"fmt"
	"time"
)

// Window is a quiet-hours value: match-calendar's grammar, except that the
// end may lie before the start, meaning the window runs past midnight into
// the next day ("22:00-07:00", "fri 22:00-07:00" = Friday 22:00 to
// Saturday 07:00). Listed weekdays name the day the window starts on.
type Window struct {
	rule      CalendarRule
	overnight bool
}

// ParseWindow parses a quiet-hours value.
func ParseWindow(s string) (Window, error) {
	r, err := parseDaily(s, true)
	if err != nil {
		return Window{}, err
	}
	if r.start == r.end {
		return Window{}, fmt.Errorf("invalid window %q: start and end are the same time", s)
	}
	return Window{rule: r, overnight: r.start > r.end}, nil
}

// String returns the value as written.
func (w Window) String() string { return w.rule.text }

// MarshalText renders the value as written.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.rule.text), nil }

// Match reports whether t (local time) lies inside the window.
func (w Window) Match(t time.Time) bool {
	if !w.overnight {
		return w.rule.Match(t)
	}
	hm := t.Hour()*60 + t.Minute()
	if hm >= w.rule.start {
		return w.rule.dayListed(t.Weekday())
	}
	if hm < w.rule.end {
		return w.rule.dayListed(t.AddDate(0, 0, -1).Weekday())
	}
	return false
}

// End returns when the window that contains t ends: the first minute
// boundary after t that lies outside it. ok is false when t is not inside
// the window.
func (w Window) End(t time.Time) (end time.Time, ok bool) {
	if !w.Match(t) {
		return time.Time{}, false
	}
	// A window lasts less than a day, plus a listed next day: walking
	// minutes for at most eight days always finds the end.
	m := t.Truncate(time.Minute)
	for range 8 * 24 * 60 {
		m = m.Add(time.Minute)
		if !w.Match(m) {
			return m, true
		}
	}
	return time.Time{}, false
}

// dayListed reports whether the rule applies on day d (no list: every day).
func (r CalendarRule) dayListed(d time.Weekday) bool {
	return r.days == 0 || r.days&(1<<uint(d)) != 0
}

// CalendarTime is a digest time: an optional weekday list and one
// hour[:minute], e.g. "08:00" or "mon..fri 8:30" (local time).
type CalendarTime struct {
	rule CalendarRule // start is the time; end unused
}

// ParseCalendarTime parses a digest time with match-calendar's weekday and
// hour:minute grammar, without the end time.
func ParseCalendarTime(s string) (CalendarTime, error) {
	r := CalendarRule{text: s}
	p := &calParser{s: s}
	if s == "" {
		return CalendarTime{}, fmt.Errorf("invalid time %q: empty value (want e.g. \"08:00\" or \"mon..fri 8:00\")", s)
	}
	if err := p.weekdays(&r); err != nil {
		return CalendarTime{}, err
	}
	start, err := p.hm()
	if err != nil {
		return CalendarTime{}, err
	}
	if p.pos != len(s) {
		return CalendarTime{}, p.errf("unexpected trailing text")
	}
	if r.days == 0x7f {
		r.days = 0
	}
	r.start, r.end = start, start+1
	return CalendarTime{rule: r}, nil
}

// String returns the value as written.
func (c CalendarTime) String() string { return c.rule.text }

// MarshalText renders the value as written.
func (c CalendarTime) MarshalText() ([]byte, error) { return []byte(c.rule.text), nil }

// Next returns the first occurrence of the time strictly after t, in t's
// location.
func (c CalendarTime) Next(t time.Time) time.Time {
	y, mo, d := t.Date()
	for i := range 9 {
		day := time.Date(y, mo, d+i, 0, 0, 0, 0, t.Location())
		at := time.Date(y, mo, d+i, c.rule.start/60, c.rule.start%60, 0, 0, t.Location())
		if at.After(t) && c.rule.dayListed(day.Weekday()) {
			return at
		}
	}
	return time.Time{} // unreachable: every week has a listed day
}
