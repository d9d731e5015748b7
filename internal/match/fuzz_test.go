package match

import (
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

func FuzzParseCalendar(f *testing.F) {
	for _, s := range []string{
		"8-12", "8:00-15:30", "mon-fri 9:00-17:00", "sun,tue-wed,fri 9-17", "mon..fri 9-17",
		"tue..fri,sun 0:00-23:59", "sat..mon 0-23", "mon8-12", "8:05 - 12:20", "12-8", "8-24",
		"mon, tue 8-12", "mon-9-17", "", " 8-12", "8:60-12", "MONDAY..sunday\t0-0",
	} {
		f.Add(s)
	}
	at := time.Date(2025, 6, 2, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseCalendar(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid match-calendar ") {
				t.Fatalf("error without the standard prefix: %v", err)
			}
			return
		}
		again, err := ParseCalendar(r.String())
		if err != nil {
			t.Fatalf("re-parse of %q failed: %v", r.String(), err)
		}
		if again != r {
			t.Fatalf("round trip changed the rule: %+v vs %+v", again, r)
		}
		s0, e0 := r.Window()
		if s0 > e0 || e0 >= 24*time.Hour {
			t.Fatalf("bad window %v-%v for %q", s0, e0, s)
		}
		for i := range 7 * 24 {
			r.Match(at.Add(time.Duration(i) * time.Hour))
		}
	})
}

func FuzzParseField(f *testing.F) {
	for _, s := range []string{
		"exact:type=gc", "exact:type=prune,verify", "regex:datastore=^backup-.*$",
		"regex:datastore=.*", "type=gc", "exact:type", "exact:=x", "regex:x=(", "exact:k=a=b",
		"regex:hostname=^node-4", "regex:k=gc$", "regex:k=^gc$", "regex:k=gc", "regex:k=(?i)gc",
		"regex:k=\\x{fffd}", "regex:k=\\Agc\\z", "regex:k=(?m)^gc$",
	} {
		f.Add(s, "gc")
	}
	f.Fuzz(func(t *testing.T, s, value string) {
		r, err := ParseField(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid match-field ") {
				t.Fatalf("error without the standard prefix: %v", err)
			}
			return
		}
		again, err := ParseField(r.String())
		if err != nil {
			t.Fatalf("re-parse of %q failed: %v", r.String(), err)
		}
		if again.String() != r.String() || again.Field() != r.Field() || again.Exact() != r.Exact() {
			t.Fatalf("round trip changed the rule: %q vs %q", again.String(), r.String())
		}
		e := &event.Event{Fields: map[string]string{r.Field(): value}}
		if again.Match(e) != r.Match(e) {
			t.Fatalf("round trip changed the result for %q", value)
		}
		if r.Match(&event.Event{}) {
			t.Fatalf("%q matched an event without the field", s)
		}
		// A literal regex is decided by a string comparison; it must
		// agree with the regex it stands for.
		if r.re != nil && r.MatchValue(value) != r.re.MatchString(value) {
			t.Fatalf("%q on %q: shortcut %v (lit %q op %d), regex %v", s, value, r.MatchValue(value), r.lit, r.litOp, r.re.MatchString(value))
		}
	})
}

func FuzzParseSeverity(f *testing.F) {
	for _, s := range []string{"error", "warning,error", "info,", " info , notice ", "Error"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseSeverity(s)
		if err != nil {
			return
		}
		again, err := ParseSeverity(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q: %v %+v %+v", s, err, again, r)
		}
	})
}
