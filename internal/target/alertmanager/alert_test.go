package alertmanager

import (
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"herald/internal/event"
)

func mkEvent(sev event.Severity, fields map[string]string) *event.Event {
	return &event.Event{ID: "ev1", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Severity: sev,
		Title: "pool tank degraded", Body: "vdev sdc faulted", Fields: fields}
}

func TestLabels(t *testing.T) {
	long := strings.Repeat("x", MaxLabelValue+50)
	for _, tc := range []struct {
		name   string
		sev    event.Severity
		fields map[string]string
		only   []string
		want   map[string]string
	}{
		{"type severity hostname and fields", event.Error,
			map[string]string{"type": "zfs", "hostname": "pve1", "pool": "tank"}, nil,
			map[string]string{"alertname": "zfs", "severity": "error", "hostname": "pve1", "pool": "tank"}},
		{"invalid label names are left out", event.Warning,
			map[string]string{"type": "smart", "disk-id": "sda", "1st": "x", "__name__": "y", "ünï": "z", "job_id": "7", "": "e"}, nil,
			map[string]string{"alertname": "smart", "severity": "warning", "job_id": "7"}},
		{"fields cannot override the fixed labels", event.Info,
			map[string]string{"type": "t", "alertname": "spoof", "severity": "error"}, nil,
			map[string]string{"alertname": "t", "severity": "info"}},
		{"label-field limits the fields", event.Error,
			map[string]string{"type": "zfs", "hostname": "h", "pool": "tank", "vdev": "sdc"}, []string{"pool"},
			map[string]string{"alertname": "zfs", "severity": "error", "hostname": "h", "pool": "tank"}},
		{"no type", event.Notice, nil, nil,
			map[string]string{"alertname": "herald", "severity": "notice"}},
		{"empty values are left out, long ones cut", event.Error,
			map[string]string{"type": "x", "empty": "", "long": long}, nil,
			map[string]string{"alertname": "x", "severity": "error", "long": long[:MaxLabelValue]}},
		{"a heartbeat's status is not a label", event.Error,
			map[string]string{"type": "heartbeat", "monitor": "backup", "status": "down", "hostname": "h"}, nil,
			map[string]string{"alertname": "heartbeat", "severity": "error", "monitor": "backup", "hostname": "h"}},
		{"status is a label of other events", event.Error,
			map[string]string{"type": "job", "status": "failed"}, nil,
			map[string]string{"alertname": "job", "severity": "error", "status": "failed"}},
		{"invalid UTF-8 is repaired", event.Error,
			map[string]string{"type": "a\xffb"}, nil,
			map[string]string{"alertname": "a\uFFFDb", "severity": "error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Labels(mkEvent(tc.sev, tc.fields), tc.only)
			if !maps.Equal(got, tc.want) {
				t.Fatalf("Labels = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLabelsBoundedCount(t *testing.T) {
	f := map[string]string{"type": "many"}
	for i := range 500 {
		f["f"+strings.Repeat("a", i%26)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	got := Labels(mkEvent(event.Error, f), nil)
	if len(got) != MaxLabels+2 { // alertname, severity (no hostname)
		t.Fatalf("%d labels, want %d", len(got), MaxLabels+2)
	}
}

func TestValidLabelName(t *testing.T) {
	for name, want := range map[string]bool{"a": true, "_a1": true, "A_b": true, "": false, "1a": false,
		"a-b": false, "a.b": false, "__x": false, "ä": false, "a b": false} {
		if ValidLabelName(name) != want {
			t.Errorf("ValidLabelName(%q) = %v", name, !want)
		}
	}
}

// A huge body becomes a bounded, valid-UTF-8 description that says it was
// cut.
func TestAnnotationsBounded(t *testing.T) {
	ev := mkEvent(event.Error, nil)
	ev.Title = strings.Repeat("t", 5000)
	ev.Body = strings.Repeat("ä", 10<<20)
	a := Annotations(ev)
	d, s := a["description"], a["summary"]
	if len(d) > MaxDescription || !strings.HasSuffix(d, truncateMarker) || !utf8.ValidString(d) {
		t.Fatalf("description: %d bytes, valid %v, suffix %q", len(d), utf8.ValidString(d), d[len(d)-20:])
	}
	if len(s) > MaxSummary || !strings.HasSuffix(s, truncateMarker) {
		t.Fatalf("summary: %d bytes", len(s))
	}
	short := Annotations(mkEvent(event.Error, nil))
	if short["summary"] != "pool tank degraded" || short["description"] != "vdev sdc faulted" {
		t.Fatalf("short annotations changed: %v", short)
	}
}

// FuzzLabels: whatever the fields, every label name is valid, every value
// valid UTF-8 and bounded, and the count bounded.
func FuzzLabels(f *testing.F) {
	f.Add("zfs", "pool", "tank", "disk-id", "sda")
	f.Add("heartbeat", "status", "down", "monitor", "m")
	f.Add("", "__name__", "\xff", "a", strings.Repeat("x", 300))
	f.Fuzz(func(t *testing.T, typ, k1, v1, k2, v2 string) {
		ev := mkEvent(event.Error, map[string]string{"type": typ, k1: v1, k2: v2})
		l := Labels(ev, nil)
		if len(l) > MaxLabels+3 {
			t.Fatalf("%d labels", len(l))
		}
		for k, v := range l {
			if !ValidLabelName(k) || !utf8.ValidString(v) || len(v) > MaxLabelValue || v == "" {
				t.Fatalf("bad label %q=%q", k, v)
			}
		}
		if l["alertname"] == "" || l["severity"] != "error" {
			t.Fatalf("fixed labels missing: %v", l)
		}
	})
}
