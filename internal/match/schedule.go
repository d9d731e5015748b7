package match

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is a calendar event in the syntax of Proxmox's job schedules
// and systemd.time(7): optional weekdays, an optional date and an optional
// time, e.g. "daily", "mon..fri 03:00", "*-*-* 03:00", "sat 02:30",
// "*-*-01 04:00", "*/15". It names points in time (not windows, unlike
// CalendarRule); Next finds the first one after a given time.
//
//	event     := shortcut | [weekdays] [date] [time]   (at least one part)
//	shortcut  := minutely | hourly | daily | weekly | monthly | quarterly
//	             | semiannually | semi-annually | yearly | annually
//	weekdays  := weekday-range ("," weekday-range)*    mon..fri, sat,sun
//	date      := [year "-"] month "-" day
//	time      := hour ":" minute [":" second] | minute
//	component := "*" ["/" step] | item ("," item)*
//	item      := number [".." number] ["/" step]
//
// A missing time is 00:00:00, a missing second 0, a missing date every day;
// a time of a single component is minutes in every hour ("*/5" every five
// minutes), as Proxmox reads it. Times are evaluated in the location of the
// time passed to Next.
type Schedule struct {
	text    string
	days    uint8 // weekdays, bit = time.Weekday; 0 = every day
	years   []yearRange
	months  uint64 // bit m set = month m (1..12)
	mdays   uint64 // bit d set = day of month d (1..31)
	hours   uint64
	minutes uint64
	seconds uint64
}

type yearRange struct{ lo, hi, step int }

// MarshalText renders the schedule as written.
func (s Schedule) MarshalText() ([]byte, error) { return []byte(s.text), nil }

// String returns the schedule as written.
func (s Schedule) String() string { return s.text }

var scheduleShortcuts = map[string]string{
	"minutely":      "*-*-* *:*:00",
	"hourly":        "*-*-* *:00:00",
	"daily":         "*-*-* 00:00:00",
	"weekly":        "mon *-*-* 00:00:00",
	"monthly":       "*-*-01 00:00:00",
	"quarterly":     "*-01,04,07,10-01 00:00:00",
	"semiannually":  "*-01,07-01 00:00:00",
	"semi-annually": "*-01,07-01 00:00:00",
	"yearly":        "*-01-01 00:00:00",
	"annually":      "*-01-01 00:00:00",
}

const (
	minYear = 1970
	maxYear = 2199
)

// ParseSchedule parses a calendar event (see Schedule). Errors start with
// "invalid schedule".
func ParseSchedule(s string) (Schedule, error) {
	sc := Schedule{text: s}
	fail := func(format string, args ...any) (Schedule, error) {
		return Schedule{}, fmt.Errorf("invalid schedule %q: %s", s, fmt.Sprintf(format, args...))
	}
	body := strings.TrimSpace(s)
	if body == "" {
		return fail("empty (want e.g. daily, \"mon..fri 03:00\" or \"*-*-* 03:00\")")
	}
	if exp, ok := scheduleShortcuts[strings.ToLower(body)]; ok {
		body = exp
	}
	tokens := strings.Fields(body)
	i := 0
	if i < len(tokens) && isAlpha(tokens[i][0]) {
		p := &calParser{s: tokens[i]}
		var r CalendarRule
		for {
			if err := p.weekdayRange(&r); err != nil {
				return fail("weekdays %q: expected names such as mon..fri or sat,sun", tokens[i])
			}
			if strings.HasPrefix(p.rest(), ",") {
				p.pos++
				continue
			}
			break
		}
		if p.rest() != "" {
			return fail("weekdays %q: unexpected %q", tokens[i], p.rest())
		}
		sc.days = r.days
		if sc.days == 0x7f {
			sc.days = 0
		}
		i++
	}
	sc.years = []yearRange{{minYear, maxYear, 1}}
	sc.months, sc.mdays = ^uint64(0), ^uint64(0)
	if i < len(tokens) && strings.Contains(tokens[i], "-") {
		parts := strings.Split(tokens[i], "-")
		if len(parts) == 2 {
			parts = append([]string{"*"}, parts...)
		}
		if len(parts) != 3 {
			return fail("date %q: want [YEAR-]MONTH-DAY", tokens[i])
		}
		ys, err := parseYears(parts[0])
		if err != nil {
			return fail("year %q: %v", parts[0], err)
		}
		sc.years = ys
		if sc.months, err = parseComponent(parts[1], 1, 12); err != nil {
			return fail("month %q: %v", parts[1], err)
		}
		if sc.mdays, err = parseComponent(parts[2], 1, 31); err != nil {
			return fail("day %q: %v", parts[2], err)
		}
		i++
	}
	sc.hours, sc.minutes, sc.seconds = 1, 1, 1 // 00:00:00
	if i < len(tokens) {
		parts := strings.Split(tokens[i], ":")
		var err error
		switch len(parts) {
		case 1:
			sc.hours = ^uint64(0)
			if sc.minutes, err = parseComponent(parts[0], 0, 59); err != nil {
				return fail("minute %q: %v", parts[0], err)
			}
		case 2, 3:
			if sc.hours, err = parseComponent(parts[0], 0, 23); err != nil {
				return fail("hour %q: %v", parts[0], err)
			}
			if sc.minutes, err = parseComponent(parts[1], 0, 59); err != nil {
				return fail("minute %q: %v", parts[1], err)
			}
			if len(parts) == 3 {
				if sc.seconds, err = parseComponent(parts[2], 0, 59); err != nil {
					return fail("second %q: %v", parts[2], err)
				}
			}
		default:
			return fail("time %q: want HOUR:MINUTE[:SECOND]", tokens[i])
		}
		i++
	}
	if i < len(tokens) {
		return fail("unexpected %q", strings.Join(tokens[i:], " "))
	}
	sc.hours &= (1 << 24) - 1
	sc.minutes &= (1 << 60) - 1
	sc.seconds &= (1 << 60) - 1
	sc.months &= 0x1ffe
	sc.mdays &= 0xfffffffe
	return sc, nil
}

// parseComponent parses one date or time component into a bit set of the
// values lo..hi it lists.
func parseComponent(s string, lo, hi int) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	var set uint64
	for item := range strings.SplitSeq(s, ",") {
		a, b, step, err := parseItem(item, lo, hi)
		if err != nil {
			return 0, err
		}
		for v := a; v <= b; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

// parseItem parses "*", "N", "A..B", each optionally followed by "/STEP".
// "N/STEP" means N, N+STEP, ... up to hi, as in systemd.
func parseItem(item string, lo, hi int) (a, b, step int, err error) {
	base, stepText, hasStep := strings.Cut(item, "/")
	step = 1
	if hasStep {
		step, err = strconv.Atoi(stepText)
		if err != nil || step < 1 || step > hi {
			return 0, 0, 0, fmt.Errorf("step %q must be a number from 1 to %d", stepText, hi)
		}
	}
	num := func(t string) (int, error) {
		v, err := strconv.Atoi(t)
		if err != nil || len(t) > 4 || v < lo || v > hi {
			return 0, fmt.Errorf("%q must be a number from %d to %d", t, lo, hi)
		}
		return v, nil
	}
	switch {
	case base == "*":
		return lo, hi, step, nil
	case strings.Contains(base, ".."):
		x, y, _ := strings.Cut(base, "..")
		if a, err = num(x); err != nil {
			return 0, 0, 0, err
		}
		if b, err = num(y); err != nil {
			return 0, 0, 0, err
		}
		if a > b {
			return 0, 0, 0, fmt.Errorf("range %s..%s ends before it starts", x, y)
		}
		return a, b, step, nil
	default:
		if a, err = num(base); err != nil {
			return 0, 0, 0, err
		}
		if hasStep {
			return a, hi, step, nil
		}
		return a, a, 1, nil
	}
}

func parseYears(s string) ([]yearRange, error) {
	var out []yearRange
	for item := range strings.SplitSeq(s, ",") {
		a, b, step, err := parseItem(item, minYear, maxYear)
		if err != nil {
			return nil, err
		}
		out = append(out, yearRange{a, b, step})
	}
	return out, nil
}

func (s *Schedule) yearOK(y int) bool {
	for _, r := range s.years {
		if y >= r.lo && y <= r.hi && (y-r.lo)%r.step == 0 {
			return true
		}
	}
	return false
}

// dayOK reports whether the calendar day of t is one the schedule names.
func (s *Schedule) dayOK(t time.Time) bool {
	if s.days != 0 && s.days&(1<<uint(t.Weekday())) == 0 {
		return false
	}
	return s.yearOK(t.Year()) && s.months&(1<<uint(t.Month())) != 0 && s.mdays&(1<<uint(t.Day())) != 0
}

// maxScanDays bounds Next's search: a schedule with no occurrence within
// this many days of the start (a year list in the far future, 02-30) has
// none as far as herald is concerned.
const maxScanDays = 8 * 366

// Next returns the first time strictly after t that the schedule names,
// in t's location, and false when there is none within eight years.
func (s Schedule) Next(t time.Time) (time.Time, bool) {
	loc := t.Location()
	start := t.Truncate(time.Second).Add(time.Second)
	day := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, loc)
	for n := 0; n < maxScanDays; n++ {
		if n > 0 {
			day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
		}
		if !s.dayOK(day) {
			continue
		}
		if next, ok := s.firstInDay(day, start); ok {
			return next, true
		}
	}
	return time.Time{}, false
}

// firstInDay returns the first scheduled time of the calendar day of day
// that is not before notBefore.
func (s *Schedule) firstInDay(day, notBefore time.Time) (time.Time, bool) {
	for hs := s.hours; hs != 0; hs &= hs - 1 {
		h := bits.TrailingZeros64(hs)
		for ms := s.minutes; ms != 0; ms &= ms - 1 {
			m := bits.TrailingZeros64(ms)
			// Skip whole hours and minutes already past without trying
			// every second in them.
			end := time.Date(day.Year(), day.Month(), day.Day(), h, m, 59, 0, day.Location())
			if end.Before(notBefore) {
				continue
			}
			for ss := s.seconds; ss != 0; ss &= ss - 1 {
				sec := bits.TrailingZeros64(ss)
				c := time.Date(day.Year(), day.Month(), day.Day(), h, m, sec, 0, day.Location())
				// A time that does not exist (DST gap) normalises into
				// another day or hour: not this occurrence.
				if c.Day() != day.Day() || c.Hour() != h {
					continue
				}
				if !c.Before(notBefore) {
					return c, true
				}
			}
		}
	}
	return time.Time{}, false
}
