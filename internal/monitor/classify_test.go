package monitor

import (
	"testing"
	"time"

	"herald/internal/event"
)

func TestClassify(t *testing.T) {
	m := monitors(t, "heartbeat: vz\n\tmatch-field exact:type=vzdump\n\tmatch-field exact:hostname=pve1\n\tperiod 24h\n\n"+
		"heartbeat: inv\n\tmatch-field exact:type=noise\n\tinvert-match true\n\tperiod 1h\n\n"+
		"heartbeat: any\n\tmatch-field exact:type=a\n\tmatch-field exact:type=b\n\tmode any\n\tperiod 1h\n\tfailure-severity error,unknown\n\n"+
		"heartbeat: kuma\n\tperiod 1h\n\n"+
		"heartbeat: off\n\tmatch-field exact:type=vzdump\n\tperiod 1h\n\tdisable true\n\n"+
		"heartbeat: night\n\tmatch-field exact:type=vzdump\n\tmatch-calendar 0-6\n\tperiod 1h\n",
		"heartbeat: kuma\n\tpush-token tok-4711-abc\n")
	ev := func(typ string, sev event.Severity, fields ...string) *event.Event {
		e := &event.Event{Timestamp: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC), Severity: sev,
			Fields: map[string]string{event.FieldType: typ, event.FieldHostname: "pve1"}}
		for i := 0; i+1 < len(fields); i += 2 {
			e.Fields[fields[i]] = fields[i+1]
		}
		return e
	}
	cases := []struct {
		hb   string
		ev   *event.Event
		want Outcome
	}{
		{"vz", ev("vzdump", event.Info), Success},
		{"vz", ev("vzdump", event.Notice), Success},
		{"vz", ev("vzdump", event.Warning), Failure},
		{"vz", ev("vzdump", event.Error), Failure},
		{"vz", ev("vzdump", event.Unknown), Success}, // an unclassified mail the rules select
		{"vz", ev("vzdump", event.Info, event.FieldHostname, "pve2"), None},
		{"vz", ev("cron", event.Info), None},
		{"vz", ev(TypeHeartbeat, event.Info), None},
		{"inv", ev("backup", event.Info), Success},
		{"inv", ev("noise", event.Info), None},
		{"inv", ev(TypeHeartbeat, event.Info), None}, // never, even when the rules would match
		{"any", ev("b", event.Info), Success},
		{"any", ev("a", event.Unknown), Failure},
		{"any", ev("a", event.Warning), Success},
		{"kuma", ev(TypePush, event.Info, FieldMonitor, "kuma", FieldStatus, "up"), Success},
		{"kuma", ev(TypePush, event.Error, FieldMonitor, "kuma", FieldStatus, "down"), Failure},
		{"kuma", ev(TypePush, event.Info, FieldMonitor, "other", FieldStatus, "up"), None},
		{"kuma", ev("vzdump", event.Info), None},                                      // no rules: only its token
		{"vz", ev(TypePush, event.Info, FieldMonitor, "vz", FieldStatus, "up"), None}, // vz has no token
		{"off", ev("vzdump", event.Info), None},
		{"night", ev("vzdump", event.Info), Success}, // 03:00 is inside 0-6
	}
	for _, c := range cases {
		h := m.Heartbeat(c.hb)
		got := Classify(h, c.ev, time.UTC)
		if got.Outcome != c.want {
			t.Errorf("%s on %v: %s (%s), want %s", c.hb, c.ev.Fields, got.Outcome, got.Reason, c.want)
		}
		if got.Reason == "" {
			t.Errorf("%s: no reason", c.hb)
		}
		if fast := classify(h, c.ev, time.UTC, false); fast.Outcome != got.Outcome {
			t.Errorf("%s on %v: Feed's verdict %s, Classify's %s", c.hb, c.ev.Fields, fast.Outcome, got.Outcome)
		}
	}
	late := ev("vzdump", event.Info)
	late.Timestamp = time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	if got := Classify(m.Heartbeat("night"), late, time.UTC); got.Outcome != None {
		t.Errorf("match-calendar is evaluated at the event's time: %s", got.Reason)
	}
	if n := len(Explain(m, ev("vzdump", event.Info), time.UTC)); n != 6 {
		t.Errorf("Explain: %d verdicts, want 6", n)
	}
}
