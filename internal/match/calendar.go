package match

import (
	"fmt"
	"strings"
	"time"
)

// CalendarRule is one match-calendar value. Despite the name it is not a
// systemd calendar event but Proxmox's "daily duration": an optional list of
// weekdays and a half-open time-of-day window [start, end) with minute
// resolution, e.g. "mon..fri 9:00-17:00".
type CalendarRule struct {
	text      string
	days      uint8 // bit d set = time.Weekday(d) listed; 0 = every day
	start     int   // minutes since midnight, inclusive
	end       int   // minutes since midnight, exclusive
	dashRange bool  // a '-' weekday range was used (herald extension)
}

// weekdayNames maps Proxmox's accepted weekday spellings to Go weekdays.
var weekdayNames = map[string]time.Weekday{
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
	"sun": time.Sunday, "sunday": time.Sunday,
}

// calParser walks a calendar value. It mirrors proxmox-time's nom parser
// (parse_daily_duration) step by step so that the same strings are accepted.
type calParser struct {
	s   string
	pos int
}

func (p *calParser) rest() string { return p.s[p.pos:] }

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// alpha returns the run of ASCII letters at the cursor (nom's alpha1).
func (p *calParser) alpha() string {
	i := p.pos
	for i < len(p.s) && isAlpha(p.s[i]) {
		i++
	}
	return p.s[p.pos:i]
}

// weekday parses one weekday name at the cursor; on failure the cursor is
// left unchanged.
func (p *calParser) weekday() (time.Weekday, bool) {
	w := p.alpha()
	d, ok := weekdayNames[strings.ToLower(w)]
	if !ok {
		return 0, false
	}
	p.pos += len(w)
	return d, true
}

// monIndex converts a Go weekday to Proxmox's Monday-first index 0..6, which
// is what range wrap-around is defined on.
func monIndex(d time.Weekday) int { return (int(d) + 6) % 7 }

// weekdayRange parses weekday [(".."|"-") weekday]. The '-' form is herald's
// extension: it is a range separator only when a weekday name follows, so
// the time range in "mon-9-17" is never mistaken for one.
func (p *calParser) weekdayRange(r *CalendarRule) error {
	start, ok := p.weekday()
	if !ok {
		return p.errf("expected a weekday name (mon, tue, wed, thu, fri, sat, sun)")
	}
	end := start
	save := p.pos
	switch {
	case strings.HasPrefix(p.rest(), ".."):
		p.pos += 2
		if end, ok = p.weekday(); !ok {
			p.pos = save
			end = start
		}
	case strings.HasPrefix(p.rest(), "-"):
		p.pos++
		if end, ok = p.weekday(); ok {
			r.dashRange = true
		} else {
			p.pos = save
			end = start
		}
	}
	// Walk from start to end on the Monday-first week, wrapping past Sunday.
	i, j := monIndex(start), monIndex(end)
	for {
		r.days |= 1 << uint((i+1)%7) // back to Go's Sunday-first numbering
		if i == j {
			break
		}
		i = (i + 1) % 7
	}
	return nil
}

// number parses a time component (nom digit1 + "time value too large").
func (p *calParser) number(max int, what string) (int, error) {
	i := p.pos
	for i < len(p.s) && isDigit(p.s[i]) {
		i++
	}
	if i == p.pos {
		return 0, p.errf("expected %s digits", what)
	}
	digits := p.s[p.pos:i]
	v := 0
	for k := 0; k < len(digits); k++ {
		v = v*10 + int(digits[k]-'0')
		if v >= max {
			return 0, p.errf("%s %s is too large (at most %d)", what, digits, max-1)
		}
	}
	p.pos = i
	return v, nil
}

// hm parses hour[:minute] and returns minutes since midnight.
func (p *calParser) hm() (int, error) {
	h, err := p.number(24, "hour")
	if err != nil {
		return 0, err
	}
	m := 0
	if strings.HasPrefix(p.rest(), ":") {
		p.pos++
		if m, err = p.number(60, "minute"); err != nil {
			return 0, err
		}
	}
	return h*60 + m, nil
}

func (p *calParser) spaces() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *calParser) errf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.pos < len(p.s) {
		return fmt.Errorf("invalid match-calendar %q: %s at %q", p.s, msg, p.rest())
	}
	return fmt.Errorf("invalid match-calendar %q: %s at end of value", p.s, msg)
}

// ParseCalendar parses a match-calendar value with proxmox-time's grammar:
//
//	daily-duration := [ weekday-range ( "," weekday-range )* SP* ] hm SP* "-" SP* hm
//	weekday-range  := weekday [ ".." weekday ]
//	hm             := hour [ ":" minute ]      hour 0..23, minute 0..59
//
// Weekday names (mon or monday, ...) are ASCII case-insensitive; a range
// whose start lies after its end wraps around the week (sat..mon). The whole
// string must be consumed; no leading or trailing space. herald also accepts
// '-' between two weekday names (mon-fri 9-17, as the Proxmox docs show);
// ProxmoxCompatible reports whether that form was used.
func ParseCalendar(s string) (CalendarRule, error) {
	return parseDaily(s, false)
}

// weekdays parses the optional weekday list that starts a daily duration
// (or a digest time) and the blanks after it.
func (p *calParser) weekdays(r *CalendarRule) error {
	if p.pos >= len(p.s) || !isAlpha(p.s[p.pos]) {
		return nil
	}
	for {
		if err := p.weekdayRange(r); err != nil {
			return err
		}
		// Like nom's separated_list1: a ',' only continues the list when a
		// weekday follows it; otherwise the ',' is left for the time parser
		// to reject.
		if strings.HasPrefix(p.rest(), ",") && p.pos+1 < len(p.s) && isAlpha(p.s[p.pos+1]) {
			p.pos++
			continue
		}
		break
	}
	p.spaces()
	return nil
}

// parseDaily parses a daily duration; wrap allows an end before the start
// (a window across midnight, see ParseWindow).
func parseDaily(s string, wrap bool) (CalendarRule, error) {
	r := CalendarRule{text: s}
	p := &calParser{s: s}
	if s == "" {
		return CalendarRule{}, fmt.Errorf("invalid match-calendar %q: empty value (want e.g. \"mon..fri 9:00-17:00\")", s)
	}
	if err := p.weekdays(&r); err != nil {
		return CalendarRule{}, err
	}
	start, err := p.hm()
	if err != nil {
		return CalendarRule{}, err
	}
	p.spaces()
	if !strings.HasPrefix(p.rest(), "-") {
		return CalendarRule{}, p.errf("expected '-' between start and end time")
	}
	p.pos++
	p.spaces()
	endPos := p.pos
	end, err := p.hm()
	if err != nil {
		return CalendarRule{}, err
	}
	if start > end && !wrap {
		p.pos = endPos
		return CalendarRule{}, p.errf("end time before start time")
	}
	if p.pos != len(s) {
		return CalendarRule{}, p.errf("unexpected trailing text")
	}
	if r.days == 0x7f {
		r.days = 0 // all seven days listed is the same as none
	}
	r.start, r.end = start, end
	return r, nil
}

// Match reports whether t falls in the window, evaluated in t's own
// location (callers pass local time): the weekday must be listed (if any
// are) and the hour:minute must lie in [start, end). Seconds are ignored.
func (r CalendarRule) Match(t time.Time) bool {
	return r.MatchClock(t.Weekday(), t.Hour()*60+t.Minute())
}

// MatchClock is Match for a weekday and a time of day in minutes since
// midnight, for callers that test many rules against one time.
func (r CalendarRule) MatchClock(day time.Weekday, minute int) bool {
	if r.days != 0 && r.days&(1<<uint(day)) == 0 {
		return false
	}
	return minute >= r.start && minute < r.end
}

// ProxmoxCompatible reports whether Proxmox's own parser would accept the
// value: false when a weekday range was written with '-' instead of '..'.
func (r CalendarRule) ProxmoxCompatible() bool { return !r.dashRange }

// Days returns the listed weekdays in Monday-first order; nil means every day.
func (r CalendarRule) Days() []time.Weekday {
	if r.days == 0 {
		return nil
	}
	var out []time.Weekday
	for i := range 7 {
		d := time.Weekday((i + 1) % 7)
		if r.days&(1<<uint(d)) != 0 {
			out = append(out, d)
		}
	}
	return out
}

// Window returns the start (inclusive) and end (exclusive) of the daily
// window as offsets from midnight.
func (r CalendarRule) Window() (start, end time.Duration) {
	return time.Duration(r.start) * time.Minute, time.Duration(r.end) * time.Minute
}

// String returns the rule as it was written.
func (r CalendarRule) String() string { return r.text }

// MarshalText renders the rule as written (for JSON output of configs).
func (r CalendarRule) MarshalText() ([]byte, error) { return []byte(r.text), nil }
