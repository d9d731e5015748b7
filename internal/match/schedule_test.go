package match

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	utc := time.UTC
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("tzdata: %v", err)
	}
	at := func(loc *time.Location, s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-12-02 is a Wednesday.
	cases := []struct {
		sched, after, want string
		loc                *time.Location
	}{
		{"daily", "2026-12-02 05:00:00", "2026-12-03 00:00:00", utc},
		{"daily", "2026-12-02 00:00:00", "2026-12-03 00:00:00", utc}, // strictly after
		{"hourly", "2026-12-02 05:00:00", "2026-12-02 06:00:00", utc},
		{"minutely", "2026-12-02 05:00:30", "2026-12-02 05:01:00", utc},
		{"weekly", "2026-12-02 05:00:00", "2026-12-07 00:00:00", utc},
		{"monthly", "2026-12-02 05:00:00", "2027-01-01 00:00:00", utc},
		{"quarterly", "2026-12-02 05:00:00", "2027-01-01 00:00:00", utc},
		{"yearly", "2026-12-02 05:00:00", "2027-01-01 00:00:00", utc},
		{"*-*-* 03:00", "2026-12-02 02:59:59", "2026-12-02 03:00:00", utc},
		{"*-*-* 03:00", "2026-12-02 03:00:00", "2026-12-03 03:00:00", utc},
		{"03:00", "2026-12-02 04:00:00", "2026-12-03 03:00:00", utc},
		{"mon..fri 03:00", "2026-12-04 04:00:00", "2026-12-07 03:00:00", utc}, // Fri → Mon
		{"sat,sun 10:30", "2026-12-02 04:00:00", "2026-12-05 10:30:00", utc},
		{"sat..mon 1:00", "2026-12-06 02:00:00", "2026-12-07 01:00:00", utc}, // wraps the week
		{"*/15", "2026-12-02 05:16:00", "2026-12-02 05:30:00", utc},
		{"*:0/20", "2026-12-02 05:41:00", "2026-12-02 06:00:00", utc},
		{"*:*:0/30", "2026-12-02 05:41:10", "2026-12-02 05:41:30", utc},
		{"8..17:00", "2026-12-02 17:00:00", "2026-12-03 08:00:00", utc},
		{"2,22:05", "2026-12-02 03:00:00", "2026-12-02 22:05:00", utc},
		{"*-02-29 00:00", "2026-12-02 00:00:00", "2028-02-29 00:00:00", utc},
		{"*-*-31 12:00", "2026-11-01 00:00:00", "2026-12-31 12:00:00", utc}, // November has no 31st
		{"2027-06-01 08:00", "2026-12-02 00:00:00", "2027-06-01 08:00:00", utc},
		{"mon 2027-*-* 00:00", "2026-12-02 00:00:00", "2027-01-04 00:00:00", utc},
		{"12-24", "2026-12-02 00:00:00", "2026-12-24 00:00:00", utc},
		{"fri", "2026-12-02 00:00:00", "2026-12-04 00:00:00", utc},
		// Spring forward in Berlin: 2027-03-28 02:30 does not exist.
		{"02:30", "2027-03-27 03:00:00", "2027-03-29 02:30:00", berlin},
		// Fall back: 02:30 happens twice on 2026-10-25; the first counts.
		{"02:30", "2026-10-24 03:00:00", "2026-10-25 02:30:00", berlin},
	}
	for _, c := range cases {
		s, err := ParseSchedule(c.sched)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", c.sched, err)
			continue
		}
		got, ok := s.Next(at(c.loc, c.after))
		want := at(c.loc, c.want)
		if !ok || !got.Equal(want) {
			t.Errorf("%q after %s: got %v (%v), want %v", c.sched, c.after, got, ok, want)
		}
	}
}

func TestScheduleNoOccurrence(t *testing.T) {
	s, err := ParseSchedule("*-02-30 00:00")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Fatalf("February 30th occurred at %v", got)
	}
	past, err := ParseSchedule("2020-01-01 00:00")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := past.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Fatalf("a past date occurred again at %v", got)
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, s := range []string{
		"", "   ", "fooday", "mon..xyz 03:00", "25:00", "03:60", "03:00:61", "*-13-01", "*-*-32",
		"1969-01-01", "03:00 extra", "1:2:3:4", "*/0", "5..3:00", "a-b-c", "1-2-3-4", "*-*-* 03:00 mon",
		"03:00,", "/5",
	} {
		if _, err := ParseSchedule(s); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", s)
		} else if !strings.HasPrefix(err.Error(), "invalid schedule ") {
			t.Errorf("ParseSchedule(%q): error without prefix: %v", s, err)
		}
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{
		"daily", "mon..fri 03:00", "*-*-* 03:00", "*/15", "sat,sun 2:30:15", "2027-06-01 08:00",
		"*-01,07-01", "8..17/2:00", "", "*-02-30", "mon-fri 1:00",
	} {
		f.Add(s)
	}
	start := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseSchedule(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid schedule ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		prev := start
		for range 3 {
			next, ok := sc.Next(prev)
			if !ok {
				return
			}
			if !next.After(prev) {
				t.Fatalf("%q: Next(%v) = %v is not after it", s, prev, next)
			}
			prev = next
		}
	})
}
