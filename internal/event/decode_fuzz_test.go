package event_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

// FuzzEventJSON feeds arbitrary bodies to the event validator: it must
// never panic, and whatever it accepts must be a complete event that
// survives herald's own JSON form (what the spool stores) and is accepted
// again when read back.
func FuzzEventJSON(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`[]`,
		`{"severity":"info","fields":{"type":"x"}}`,
		`{"id":"a","timestamp":"2025-01-02T03:04:05.123+01:00","severity":"error","title":"t <&>","body":"b\n","fields":{"type":"vzdump","hostname":"h"}}`,
		`{"severity":"info","fields":{"type":"x"}} {}`,
		`{"severity":"info","severity":"info","fields":{"type":"x"}}`,
		`{"severity":"info","fields":{"type":"x","type":"y"}}`,
		`{"severity":"info","fields":{"type":"x","n":null}}`,
		`{"severity":null,"fields":null,"title":null}`,
		`{"Severity":"info","fields":{"type":"x"}}`,
		`{"severity":"info","fields":{"type":"\ud800\u2028x\xff"}}`,
		`{"timestamp":"9999-12-31T23:59:59-23:59","severity":"unknown","fields":{"type":"x"}}`,
		`{"severity":"info","fields":{"type":"x"},"body":"` + strings.Repeat(`\"`, 50) + `"}`,
		`{"severity":"info","fields":{"type":{"nested":"x"}}}`,
		`{"severity":"info","fields":{"type":"x"}` + strings.Repeat(" ", 10),
		`{"a":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := event.Decode(b)
		if err != nil {
			if ev != nil {
				t.Fatalf("error %v with an event", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if strings.HasPrefix(ev.Severity.String(), "severity(") {
			t.Fatalf("accepted an invalid severity %d", ev.Severity)
		}
		if ev.Type() == "" {
			t.Fatal("accepted an event without a type")
		}
		if ev.ID != "" {
			t.Fatalf("kept the client's id %q", ev.ID)
		}
		line, err := event.JSONLine(ev)
		if err != nil {
			t.Fatalf("accepted event cannot be encoded: %v", err)
		}
		var back event.Event
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatalf("stored JSON does not read back: %v\n%s", err, line)
		}
		if back.Severity != ev.Severity || back.Title != ev.Title || back.Body != ev.Body ||
			fmt.Sprint(back.Fields) != fmt.Sprint(ev.Fields) {
			t.Fatalf("round trip changed the event:\n in %+v\nout %+v", ev, back)
		}
		if !back.Timestamp.Equal(ev.Timestamp.Truncate(time.Second)) {
			t.Fatalf("timestamp %v came back as %v", ev.Timestamp, back.Timestamp)
		}
		if _, err := event.Decode(line); err != nil {
			t.Fatalf("herald's own event JSON is refused: %v\n%s", err, line)
		}
	})
}
