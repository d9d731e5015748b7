package event

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSeverityOrderAndNames(t *testing.T) {
	want := []string{"info", "notice", "warning", "error", "unknown"}
	for i, s := range Severities() {
		if s.String() != want[i] {
			t.Errorf("severity %d = %q, want %q", i, s, want[i])
		}
		got, err := ParseSeverity(want[i])
		if err != nil || got != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", want[i], got, err)
		}
		if i > 0 && !(Severities()[i-1] < s) {
			t.Errorf("order broken at %s", s)
		}
	}
	for _, bad := range []string{"", "Info", "ERROR", "warn", " info"} {
		if _, err := ParseSeverity(bad); err == nil {
			t.Errorf("ParseSeverity(%q) accepted", bad)
		}
	}
}

func TestJSONContract(t *testing.T) {
	ts := time.Date(2026, 11, 21, 3, 4, 5, 999, time.FixedZone("CET", 3600))
	ev := Event{ID: "abc", Timestamp: ts, Severity: Warning, Title: "T <&>", Body: "b\nc",
		Fields: map[string]string{"type": "system-mail", "hostname": "pve1", "a": "x"}}
	line, err := JSONLine(&ev)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(strings.TrimSuffix(string(line), "\n"))
	want := `{"id":"abc","timestamp":"2026-11-21T03:04:05+01:00","severity":"warning","title":"T <&>","body":"b\nc","fields":{"a":"x","hostname":"pve1","type":"system-mail"}}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
	// json.Marshal escapes <>& but is the same JSON value.
	if m, _ := json.Marshal(ev); !strings.Contains(string(m), `"title":"T \u003c\u0026\u003e"`) {
		t.Fatalf("json.Marshal: %s", m)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Timestamp.Equal(ts.Truncate(time.Second)) || back.Severity != Warning || back.Fields["a"] != "x" || back.Title != ev.Title {
		t.Fatalf("round trip: %+v", back)
	}
	// A pointer marshals the same way, and nil fields become {}.
	b2, _ := json.Marshal(&Event{ID: "x", Timestamp: ts, Severity: Info})
	if !strings.Contains(string(b2), `"fields":{}`) {
		t.Fatalf("nil fields: %s", b2)
	}
}

func TestUnmarshalDefaultsAndErrors(t *testing.T) {
	var e Event
	if err := json.Unmarshal([]byte(`{"title":"x"}`), &e); err != nil {
		t.Fatal(err)
	}
	if e.Severity != Unknown || !e.Timestamp.IsZero() {
		t.Fatalf("defaults: %+v", e)
	}
	for _, bad := range []string{`{"severity":"fatal"}`, `{"timestamp":"yesterday"}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("bad or duplicate id %q", id)
		}
		seen[id] = true
	}
}
