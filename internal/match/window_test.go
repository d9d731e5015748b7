package match

import (
	"strings"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	// 2025-06-02 is a Monday.
	at := func(day, h, m int) time.Time { return time.Date(2025, 6, day, h, m, 0, 0, time.UTC) }
	tests := []struct {
		win     string
		t       time.Time
		in      bool
		wantEnd time.Time
	}{
		{"22:00-07:00", at(2, 23, 30), true, at(3, 7, 0)},
		{"22:00-07:00", at(3, 6, 59), true, at(3, 7, 0)},
		{"22:00-07:00", at(3, 7, 0), false, time.Time{}},
		{"22:00-07:00", at(2, 21, 59), false, time.Time{}},
		{"22:00-07:00", at(2, 22, 0), true, at(3, 7, 0)},
		{"9:00-17:00", at(2, 12, 0), true, at(2, 17, 0)},
		{"9:00-17:00", at(2, 17, 0), false, time.Time{}},
		// Friday night runs into Saturday morning; Saturday night is not quiet.
		{"fri 22:00-07:00", at(6, 23, 0), true, at(7, 7, 0)},
		{"fri 22:00-07:00", at(7, 6, 0), true, at(7, 7, 0)},
		{"fri 22:00-07:00", at(7, 23, 0), false, time.Time{}},
		{"fri 22:00-07:00", at(8, 6, 0), false, time.Time{}},
		// Two adjacent nights joined by a day window end at the later end.
		{"mon..sun 0:00-23:59", at(2, 23, 58), true, at(2, 23, 59)},
		{"14:05-14:06", at(2, 14, 5).Add(30 * time.Second), true, at(2, 14, 6)},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.win)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", tt.win, err)
		}
		if got := w.Match(tt.t); got != tt.in {
			t.Errorf("%q.Match(%s) = %v, want %v", tt.win, tt.t, got, tt.in)
		}
		end, ok := w.End(tt.t)
		if ok != tt.in || !end.Equal(tt.wantEnd) {
			t.Errorf("%q.End(%s) = %s, %v; want %s, %v", tt.win, tt.t, end, ok, tt.wantEnd, tt.in)
		}
	}
}

func TestParseWindowErrors(t *testing.T) {
	for _, s := range []string{"", "7:00-7:00", "25:00-1:00", "mon 8", "22-7 x"} {
		if _, err := ParseWindow(s); err == nil {
			t.Errorf("ParseWindow(%q) accepted", s)
		}
	}
}

func TestCalendarTime(t *testing.T) {
	at := func(day, h, m int) time.Time { return time.Date(2025, 6, day, h, m, 0, 0, time.UTC) }
	tests := []struct {
		s    string
		t    time.Time
		want time.Time
	}{
		{"08:00", at(2, 7, 0), at(2, 8, 0)},
		{"08:00", at(2, 8, 0), at(3, 8, 0)}, // strictly after
		{"8", at(2, 23, 0), at(3, 8, 0)},
		{"mon..fri 8:30", at(6, 9, 0), at(9, 8, 30)}, // Friday after → Monday
		{"sun 0:00", at(2, 0, 0), at(8, 0, 0)},
	}
	for _, tt := range tests {
		c, err := ParseCalendarTime(tt.s)
		if err != nil {
			t.Fatalf("ParseCalendarTime(%q): %v", tt.s, err)
		}
		if got := c.Next(tt.t); !got.Equal(tt.want) {
			t.Errorf("%q.Next(%s) = %s, want %s", tt.s, tt.t, got, tt.want)
		}
	}
	for _, s := range []string{"", "8-9", "24:00", "mon", "08:00 "} {
		if _, err := ParseCalendarTime(s); err == nil {
			t.Errorf("ParseCalendarTime(%q) accepted", s)
		}
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"22:00-07:00", "fri 22-7", "9-17", "sat..sun 23:30-0:30", "7-7", "", "mon,wed 1:05-0:59"} {
		f.Add(s)
	}
	at := time.Date(2025, 6, 2, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		for i := range 7 * 24 {
			ti := at.Add(time.Duration(i)*time.Hour + time.Duration(i%60)*time.Minute)
			end, ok := w.End(ti)
			if ok != w.Match(ti) {
				t.Fatalf("%q: End says in=%v, Match says %v at %s", s, ok, w.Match(ti), ti)
			}
			if ok && (!end.After(ti) || w.Match(end) || end.Sub(ti) > 48*time.Hour) {
				t.Fatalf("%q: bad end %s for %s", s, end, ti)
			}
		}
	})
}

func FuzzParseCalendarTime(f *testing.F) {
	for _, s := range []string{"08:00", "mon..fri 8:30", "sun 0", "8-9", "", "sat,sun 23:59"} {
		f.Add(s)
	}
	at := time.Date(2025, 6, 2, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCalendarTime(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid ") {
				t.Fatalf("error without the standard prefix: %v", err)
			}
			return
		}
		n := c.Next(at)
		if !n.After(at) || n.Sub(at) > 8*24*time.Hour {
			t.Fatalf("%q: Next(%s) = %s", s, at, n)
		}
	})
}
