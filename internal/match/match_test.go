package match

import (
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone tests must not depend on the host's zoneinfo

	"herald/internal/event"
)

func ev(sev event.Severity, fields map[string]string) *event.Event {
	return &event.Event{Severity: sev, Fields: fields}
}

func TestParseSeverity(t *testing.T) {
	tests := []struct {
		in      string
		want    []event.Severity
		wantErr string
	}{
		{in: "error", want: []event.Severity{event.Error}},                        // seed 000
		{in: "warning,error", want: []event.Severity{event.Warning, event.Error}}, // seed 000
		{in: " info , notice ", want: []event.Severity{event.Info, event.Notice}},
		{in: "unknown", want: []event.Severity{event.Unknown}},
		{in: "info,notice,warning,error,unknown", want: event.Severities()},
		{in: "error,error", want: []event.Severity{event.Error}},
		{in: "info,", wantErr: `invalid match-severity "info,": empty item in the list`},
		{in: "", wantErr: `invalid match-severity "": empty item in the list`},
		{in: ",", wantErr: "empty item"},
		{in: "Error", wantErr: `unknown severity "Error"`},
		{in: "err", wantErr: `unknown severity "err"`},
		{in: "info;error", wantErr: `unknown severity "info;error"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseSeverity(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSeverity(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSeverity(%q): %v", tt.in, err)
			}
			if r.String() != tt.in {
				t.Errorf("String() = %q, want %q", r.String(), tt.in)
			}
			got := r.Severities()
			if len(got) != len(tt.want) {
				t.Fatalf("Severities() = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Severities() = %v, want %v", got, tt.want)
				}
			}
			for _, s := range event.Severities() {
				in := false
				for _, w := range tt.want {
					in = in || w == s
				}
				if m := r.Match(ev(s, nil)); m != in {
					t.Errorf("Match(%s) = %v, want %v", s, m, in)
				}
			}
		})
	}
}

func TestParseFieldErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"type=gc", `invalid match-field "type=gc": missing exact: or regex: prefix`},
		{"Exact:type=gc", `invalid match-field "Exact:type=gc": missing exact: or regex: prefix`},
		{"glob:type=gc", `invalid match-field "glob:type=gc": missing exact: or regex: prefix`},
		{"", `invalid match-field "": missing exact: or regex: prefix`},
		{"exact:type", `invalid match-field "exact:type": missing '=' between field name and value`},
		{"exact:=gc", `invalid match-field "exact:=gc": invalid field name ""`},
		{"exact:-type=gc", `invalid field name "-type"`},
		{"exact:.type=gc", `invalid field name ".type"`},
		{"exact:ty pe=gc", `invalid field name "ty pe"`},
		{"exact:tÿpe=gc", `invalid field name "tÿpe"`},
		{"regex:type=(", `invalid match-field "regex:type=(": invalid regex: error parsing regexp: missing closing ): ` + "`(`"},
		{"regex:type=(?=x)", `invalid regex`},
		{`regex:type=\1`, `invalid regex`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseField(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseField(%q) error = %v, want containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestFieldMatch(t *testing.T) {
	tests := []struct {
		rule   string
		fields map[string]string
		want   bool
	}{
		// Seed 000 examples.
		{"exact:type=gc", map[string]string{"type": "gc"}, true},
		{"exact:type=gc", map[string]string{"type": "prune"}, false},
		{"exact:type=prune,verify", map[string]string{"type": "verify"}, true},
		{"exact:type=prune,verify", map[string]string{"type": "prune"}, true},
		{"exact:type=prune,verify", map[string]string{"type": "prune,verify"}, false},
		{"regex:datastore=^backup-.*$", map[string]string{"datastore": "backup-01"}, true},
		{"regex:datastore=^backup-.*$", map[string]string{"datastore": "xbackup-01"}, false},
		{"regex:datastore=.*", map[string]string{"datastore": ""}, true},
		{"regex:datastore=.*", map[string]string{"type": "gc"}, false}, // absent field never matches
		{"regex:datastore=.*", nil, false},
		// Research §3.3 / §1.7.
		{"exact:type=vzdump", map[string]string{"type": "vzdump"}, true},
		{"exact:type=replication,fencing", map[string]string{"type": "fencing"}, true},
		{"exact:type= replication , fencing ", map[string]string{"type": "fencing"}, true}, // values trimmed
		{"exact:type=Fencing", map[string]string{"type": "fencing"}, false},                // case-sensitive
		{"exact:type=", map[string]string{"type": ""}, true},
		{"exact:type=", map[string]string{"type": "x"}, false},
		{"exact:type=", nil, false},
		{"exact:type=a,", map[string]string{"type": ""}, true}, // a trailing comma adds the empty value
		{"exact:k=a=b", map[string]string{"k": "a=b"}, true},   // split at the first '='
		{"regex:k=a=b", map[string]string{"k": "xa=bx"}, true},
		{"regex:hostname=pve", map[string]string{"hostname": "node-pve-1"}, true}, // unanchored
		{"regex:hostname=^pve$", map[string]string{"hostname": "node-pve-1"}, false},
		{"regex:hostname=", map[string]string{"hostname": "x"}, true},
		{"exact:job-id=backup-1a2b", map[string]string{"job-id": "backup-1a2b"}, true},
		{"exact:_x.y-z=1", map[string]string{"_x.y-z": "1"}, true},
		{"exact:0=1", map[string]string{"0": "1"}, true},
		// Literal regexes are decided by string comparison: each shape.
		{"regex:hostname=^node-4", map[string]string{"hostname": "node-42"}, true},
		{"regex:hostname=^node-4", map[string]string{"hostname": "xnode-4"}, false},
		{"regex:hostname=node$", map[string]string{"hostname": "a-node"}, true},
		{"regex:hostname=node$", map[string]string{"hostname": "node\n"}, false}, // $ is the end of the value
		{"regex:hostname=^node$", map[string]string{"hostname": "node"}, true},
		{"regex:hostname=^node$", map[string]string{"hostname": "node1"}, false},
		{"regex:hostname=\\Anode\\z", map[string]string{"hostname": "node"}, true},
		{"regex:hostname=(?i)^NODE", map[string]string{"hostname": "node-1"}, true}, // folded: the regex decides
		{"regex:hostname=(?m)^node$", map[string]string{"hostname": "a\nnode\nb"}, true},
		{"regex:hostname=\\x{fffd}", map[string]string{"hostname": "\xff"}, true}, // as the regex reads invalid UTF-8
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r, err := ParseField(tt.rule)
			if err != nil {
				t.Fatalf("ParseField(%q): %v", tt.rule, err)
			}
			if r.String() != tt.rule {
				t.Errorf("String() = %q", r.String())
			}
			if got := r.Match(ev(event.Info, tt.fields)); got != tt.want {
				t.Errorf("Match(%v) = %v, want %v", tt.fields, got, tt.want)
			}
		})
	}
}

func TestFieldAccessors(t *testing.T) {
	r, err := ParseField("regex:datastore=^b")
	if err != nil {
		t.Fatal(err)
	}
	if r.Field() != "datastore" || r.Exact() {
		t.Errorf("Field/Exact = %q/%v", r.Field(), r.Exact())
	}
	r, err = ParseField("exact:type=gc")
	if err != nil {
		t.Fatal(err)
	}
	if r.Field() != "type" || !r.Exact() {
		t.Errorf("Field/Exact = %q/%v", r.Field(), r.Exact())
	}
}

func TestParseCalendar(t *testing.T) {
	const (
		mon = time.Monday
		tue = time.Tuesday
		wed = time.Wednesday
		thu = time.Thursday
		fri = time.Friday
		sat = time.Saturday
		sun = time.Sunday
	)
	tests := []struct {
		in         string
		days       []time.Weekday // nil = every day
		start, end string         // "H:MM"
		proxmox    bool           // Proxmox's own parser accepts it
	}{
		// proxmox-time's own parser tests.
		{"8-12", nil, "8:00", "12:00", true},
		{"8:0-12:0", nil, "8:00", "12:00", true},
		{"8:00-12:00", nil, "8:00", "12:00", true},
		{"8:05-12:20", nil, "8:05", "12:20", true},
		{"8:05 - 12:20", nil, "8:05", "12:20", true},
		{"mon 8-12", []time.Weekday{mon}, "8:00", "12:00", true},
		{"tue..fri 8-12", []time.Weekday{tue, wed, thu, fri}, "8:00", "12:00", true},
		{"sat,tue..thu,fri 8-12", []time.Weekday{tue, wed, thu, fri, sat}, "8:00", "12:00", true},
		// Seed 000 / docs/proxmox-notify.md §1.7, §3.4.
		{"8:00-15:30", nil, "8:00", "15:30", true},
		{"mon-fri 9:00-17:00", []time.Weekday{mon, tue, wed, thu, fri}, "9:00", "17:00", false},
		{"sun,tue-wed,fri 9-17", []time.Weekday{tue, wed, fri, sun}, "9:00", "17:00", false},
		{"mon-fri 9-17", []time.Weekday{mon, tue, wed, thu, fri}, "9:00", "17:00", false},
		{"mon..fri 9-17", []time.Weekday{mon, tue, wed, thu, fri}, "9:00", "17:00", true},
		{"tue..fri,sun 0:00-23:59", []time.Weekday{tue, wed, thu, fri, sun}, "0:00", "23:59", true},
		{"sat..mon 0-23", []time.Weekday{mon, sat, sun}, "0:00", "23:00", true},
		{"sun..mon 1-2", []time.Weekday{mon, sun}, "1:00", "2:00", true},
		{"fri-mon 1-2", []time.Weekday{mon, fri, sat, sun}, "1:00", "2:00", false},
		{"mon8-12", []time.Weekday{mon}, "8:00", "12:00", true},
		{"MONDAY..Friday 8-12", []time.Weekday{mon, tue, wed, thu, fri}, "8:00", "12:00", true},
		{"mon..sun 8-12", nil, "8:00", "12:00", true}, // all seven = every day
		{"mon..mon 8-12", []time.Weekday{mon}, "8:00", "12:00", true},
		{"tue..mon 8-12", nil, "8:00", "12:00", true},
		{"mon\t8-12", []time.Weekday{mon}, "8:00", "12:00", true},
		{"8-8", nil, "8:00", "8:00", true},
		{"0-23:59", nil, "0:00", "23:59", true},
		{"08:05-012", nil, "8:05", "12:00", true},
		{"wednesday,saturday 22:00-23:00", []time.Weekday{wed, sat}, "22:00", "23:00", true},
		{"mon..tue,thu-fri 1-2", []time.Weekday{mon, tue, thu, fri}, "1:00", "2:00", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseCalendar(tt.in)
			if err != nil {
				t.Fatalf("ParseCalendar(%q): %v", tt.in, err)
			}
			if r.String() != tt.in {
				t.Errorf("String() = %q", r.String())
			}
			if r.ProxmoxCompatible() != tt.proxmox {
				t.Errorf("ProxmoxCompatible() = %v, want %v", r.ProxmoxCompatible(), tt.proxmox)
			}
			got := r.Days()
			if len(got) != len(tt.days) {
				t.Fatalf("Days() = %v, want %v", got, tt.days)
			}
			for i := range got {
				if got[i] != tt.days[i] {
					t.Fatalf("Days() = %v, want %v", got, tt.days)
				}
			}
			s, e := r.Window()
			if f := fmtHM(s); f != tt.start {
				t.Errorf("start = %s, want %s", f, tt.start)
			}
			if f := fmtHM(e); f != tt.end {
				t.Errorf("end = %s, want %s", f, tt.end)
			}
		})
	}
}

func fmtHM(d time.Duration) string {
	m := int(d / time.Minute)
	return fmt.Sprintf("%d:%02d", m/60, m%60)
}

func TestParseCalendarErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `invalid match-calendar "": empty value`},
		{" 8-12", `invalid match-calendar " 8-12": expected hour digits at " 8-12"`},
		{"8-12 ", `unexpected trailing text at " "`},
		{"8:60-12", `minute 60 is too large (at most 59)`},
		{"8-25", `hour 25 is too large (at most 23)`},
		{"8-24", `hour 24 is too large (at most 23)`},
		{"24-24", `hour 24 is too large`},
		{"12-8", `invalid match-calendar "12-8": end time before start time at "8"`},
		{"12:30-12:29", `end time before start time at "12:29"`},
		{"mon, tue 8-12", `expected hour digits at ", tue 8-12"`},
		{"mon,,tue 8-12", `expected hour digits at ",,tue 8-12"`},
		{"mon 8", `expected '-' between start and end time at end of value`},
		{"mon", `expected hour digits at end of value`},
		{"mo 8-12", `expected a weekday name`},
		{"monx 8-12", `expected a weekday name`},
		{"mon..8-12", `expected hour digits at "..8-12"`},
		{"mon..fri..sat 8-12", `expected hour digits at "..sat 8-12"`},
		{"mon-9-17", `expected hour digits at "-9-17"`},
		{"mon - fri 9-17", `expected hour digits at "- fri 9-17"`},
		{"8:-12", `expected minute digits at "-12"`},
		{"8-12:", `expected minute digits at end of value`},
		{"8.00-12", `expected '-' between start and end time at ".00-12"`},
		{"-8-12", `expected hour digits at "-8-12"`},
		{"8--12", `expected hour digits at "-12"`},
		{"99999999999999999999-1", `hour 99999999999999999999 is too large (at most 23)`},
		{"mon..fri 9-17 sat", `unexpected trailing text at " sat"`},
		{"montag 8-12", `expected a weekday name`},
		{"８-12", `expected hour digits`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseCalendar(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseCalendar(%q) error = %v, want containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

func TestCalendarMatch(t *testing.T) {
	vienna := mustLoad(t, "Europe/Vienna")
	ny := mustLoad(t, "America/New_York")
	// 2025-06-02 is a Monday.
	tests := []struct {
		rule string
		at   time.Time
		want bool
	}{
		// proxmox-time's test_time_match: "thu..fri 8:05-12" on 1970-01-01 (Thursday), UTC.
		{"thu..fri 8:05-12", time.Date(1970, 1, 1, 8, 0, 0, 0, time.UTC), false},
		{"thu..fri 8:05-12", time.Date(1970, 1, 2, 8, 0, 0, 0, time.UTC), false},
		{"thu..fri 8:05-12", time.Date(1970, 1, 1, 8, 5, 0, 0, time.UTC), true},
		{"thu..fri 8:05-12", time.Date(1970, 1, 2, 8, 5, 0, 0, time.UTC), true},
		{"thu..fri 8:05-12", time.Date(1970, 1, 3, 8, 5, 0, 0, time.UTC), false},
		{"thu..fri 8:05-12", time.Date(1970, 1, 1, 11, 59, 59, 0, time.UTC), true},
		{"thu..fri 8:05-12", time.Date(1970, 1, 2, 11, 59, 59, 0, time.UTC), true},
		{"thu..fri 8:05-12", time.Date(1970, 1, 3, 11, 59, 59, 0, time.UTC), false},
		{"thu..fri 8:05-12", time.Date(1970, 1, 1, 12, 0, 0, 0, time.UTC), false},
		// Half-open window, minute resolution.
		{"9-17", time.Date(2025, 6, 2, 8, 59, 59, 999, vienna), false},
		{"9-17", time.Date(2025, 6, 2, 9, 0, 0, 0, vienna), true},
		{"9-17", time.Date(2025, 6, 2, 16, 59, 59, 0, vienna), true},
		{"9-17", time.Date(2025, 6, 2, 17, 0, 0, 0, vienna), false},
		{"8-8", time.Date(2025, 6, 2, 8, 0, 0, 0, vienna), false}, // start == end never matches
		{"0-23:59", time.Date(2025, 6, 2, 23, 59, 0, 0, vienna), false},
		{"0-23:59", time.Date(2025, 6, 2, 0, 0, 0, 0, vienna), true},
		// Weekdays, both separators, wrap-around.
		{"mon-fri 9-17", time.Date(2025, 6, 2, 10, 0, 0, 0, vienna), true},  // Monday
		{"mon-fri 9-17", time.Date(2025, 6, 7, 10, 0, 0, 0, vienna), false}, // Saturday
		{"mon..fri 9-17", time.Date(2025, 6, 6, 10, 0, 0, 0, ny), true},     // Friday
		{"sat..mon 0-23", time.Date(2025, 6, 8, 10, 0, 0, 0, ny), true},     // Sunday
		{"sat..mon 0-23", time.Date(2025, 6, 3, 10, 0, 0, 0, ny), false},    // Tuesday
		{"sun,tue-wed,fri 9-17", time.Date(2025, 6, 4, 9, 0, 0, 0, ny), true},
		{"sun,tue-wed,fri 9-17", time.Date(2025, 6, 5, 9, 0, 0, 0, ny), false}, // Thursday
		{"mon..sun 8-12", time.Date(2025, 6, 5, 9, 0, 0, 0, ny), true},
	}
	for _, tt := range tests {
		t.Run(tt.rule+"@"+tt.at.Format(time.RFC3339), func(t *testing.T) {
			r, err := ParseCalendar(tt.rule)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Match(tt.at); got != tt.want {
				t.Errorf("Match(%s %s) = %v, want %v", tt.at.Weekday(), tt.at, got, tt.want)
			}
		})
	}
}

// TestCalendarZones proves that the rule is evaluated in the time's own
// location: the same instant is inside a Vienna working day and outside a
// New York one.
func TestCalendarZones(t *testing.T) {
	vienna := mustLoad(t, "Europe/Vienna")
	ny := mustLoad(t, "America/New_York")
	r, err := ParseCalendar("mon..fri 9-17")
	if err != nil {
		t.Fatal(err)
	}
	// Monday 2025-06-02 10:00 in Vienna (CEST, UTC+2) = 04:00 in New York.
	instant := time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)
	if !r.Match(instant.In(vienna)) {
		t.Errorf("10:00 Vienna should match")
	}
	if r.Match(instant.In(ny)) {
		t.Errorf("04:00 New York should not match")
	}
	// Friday 2025-06-06 20:00 in New York is Saturday 02:00 in Vienna:
	// different weekday too.
	late := time.Date(2025, 6, 7, 0, 0, 0, 0, time.UTC)
	night, err := ParseCalendar("fri 20-21")
	if err != nil {
		t.Fatal(err)
	}
	if !night.Match(late.In(ny)) || night.Match(late.In(vienna)) {
		t.Errorf("fri 20-21: NY %v Vienna %v", night.Match(late.In(ny)), night.Match(late.In(vienna)))
	}
	// Across the DST change (Vienna, 2025-03-30 02:00 → 03:00): wall-clock
	// time decides.
	dst, err := ParseCalendar("sun 3-4")
	if err != nil {
		t.Fatal(err)
	}
	if !dst.Match(time.Date(2025, 3, 30, 1, 30, 0, 0, time.UTC).In(vienna)) { // 03:30 CEST
		t.Errorf("03:30 CEST should match sun 3-4")
	}
	if dst.Match(time.Date(2025, 3, 30, 0, 30, 0, 0, time.UTC).In(vienna)) { // 01:30 CET
		t.Errorf("01:30 CET should not match sun 3-4")
	}
}

// TestCalendarExhaustive checks every minute of a week against a simple
// reference implementation for a few rules.
func TestCalendarExhaustive(t *testing.T) {
	rules := []struct {
		rule       string
		days       map[time.Weekday]bool // nil = all
		start, end int
	}{
		{"mon..fri 9-17", map[time.Weekday]bool{1: true, 2: true, 3: true, 4: true, 5: true}, 540, 1020},
		{"sat..mon 22:30-23:15", map[time.Weekday]bool{6: true, 0: true, 1: true}, 1350, 1395},
		{"0-0", nil, 0, 0},
		{"fri 0:01-0:02", map[time.Weekday]bool{5: true}, 1, 2},
	}
	base := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC) // Monday
	for _, rr := range rules {
		r, err := ParseCalendar(rr.rule)
		if err != nil {
			t.Fatal(err)
		}
		for m := 0; m < 7*24*60; m++ {
			at := base.Add(time.Duration(m) * time.Minute).Add(30 * time.Second)
			hm := at.Hour()*60 + at.Minute()
			want := (rr.days == nil || rr.days[at.Weekday()]) && hm >= rr.start && hm < rr.end
			if got := r.Match(at); got != want {
				t.Fatalf("%s at %s %s: got %v, want %v", rr.rule, at.Weekday(), at.Format("15:04:05"), got, want)
			}
		}
	}
}
