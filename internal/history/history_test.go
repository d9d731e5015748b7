package history

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func mkev(id, typ string, sev event.Severity, title string) *event.Event {
	return &event.Event{ID: id, Timestamp: time.Unix(0, 0), Severity: sev, Title: title, Body: "body " + title,
		Fields: map[string]string{"type": typ, "hostname": "h"}}
}

func TestRecordAndRead(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)}
	l, err := Open(Options{Dir: dir, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	l.Event(mkev("e1", "smartd", event.Warning, "disk almost full"), []string{"mail", "ntfy"}, nil)
	l.Delivery("e1", "mail", "pending", 1, "connection refused")
	l.Delivery("e1", "mail", "done", 2, "")
	l.Delivery("e1", "ntfy", "dead", 1, "401")
	c.t = c.t.Add(2 * time.Hour)
	l.Event(mkev("e2", "cron", event.Info, "backup ok"), []string{"mail"},
		[]Noise{{Target: "mail", Rule: "nights", Action: "hold", Until: c.t.Add(time.Hour)}})
	l.Event(mkev("e1", "smartd", event.Warning, "disk almost full"), []string{"mail"}, nil) // processed twice
	l.Delivery("gone", "mail", "done", 1, "")                                               // its event is not in the history
	l.Delivery("e3", "mail", "done", 1, "")                                                 // delivered before its event was recorded
	l.Event(mkev("e3", "x", event.Info, "fast"), []string{"mail"}, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	all, err := Read(dir, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Event.ID != "e1" || all[1].Event.ID != "e2" || all[2].Event.ID != "e3" {
		t.Fatalf("entries %+v", all)
	}
	if d := all[2].Deliveries; len(d) != 1 || d[0].State != "done" {
		t.Fatalf("outcome recorded before its event: %+v", d)
	}
	d := all[0].Deliveries
	if len(d) != 2 || d[0].Target != "mail" || d[0].State != "done" || d[0].Attempts != 2 || d[1].State != "dead" || d[1].Error != "401" {
		t.Fatalf("deliveries %+v", d)
	}
	if n := all[1].Noise; len(n) != 1 || n[0].Action != "hold" {
		t.Fatalf("noise %+v", n)
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"type", Filter{Type: "cron"}, []string{"e2"}},
		{"severity", Filter{Severity: "warning"}, []string{"e1"}},
		{"grep title", Filter{Grep: regexp.MustCompile("disk").MatchString}, []string{"e1"}},
		{"grep field", Filter{Grep: regexp.MustCompile("^type=cron$").MatchString}, []string{"e2"}},
		{"since", Filter{Since: c.t.Add(-time.Hour)}, []string{"e2", "e3"}},
		{"limit", Filter{Limit: 1}, []string{"e3"}},
		{"id", Filter{EventID: "e1"}, []string{"e1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(dir, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range got {
				ids = append(ids, e.Event.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestTornLineSkipped(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l.Event(mkev("e1", "x", event.Info, "one"), nil, nil)
	f, err := os.OpenFile(filepath.Join(dir, l.name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"kind":"event","event":{"id":"e2","ti`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l.Close()
	got, err := Read(dir, Filter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestBounds(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)}
	l, err := Open(Options{Dir: dir, Now: c.now, MaxSize: 64 << 10, Retention: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 2000)
	for i := range 200 {
		e := mkev("e"+string(rune('a'+i%26))+time.Duration(i).String(), "x", event.Info, big)
		l.Event(e, nil, nil)
	}
	if sz := dirSize(t, dir); sz > 64<<10+64<<10/segmentsPerMax {
		t.Fatalf("history is %d bytes, bound 64K", sz)
	}
	got, _ := Read(dir, Filter{})
	if len(got) == 0 || len(got) == 200 {
		t.Fatalf("kept %d of 200 events", len(got))
	}
	// Retention: segments last written more than 48 h ago go.
	for _, s := range mustSegments(t, dir) {
		old := c.t.Add(-72 * time.Hour)
		if err := os.Chtimes(filepath.Join(dir, s.name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	c.t = c.t.Add(24 * time.Hour) // a new day: a new segment, and pruning
	l.Event(mkev("new", "x", event.Info, "new"), nil, nil)
	got, _ = Read(dir, Filter{})
	if len(got) != 1 || got[0].Event.ID != "new" {
		t.Fatalf("after retention: %d events", len(got))
	}
	l.Close()
}

func dirSize(t testing.TB, dir string) int64 {
	var n int64
	for _, s := range mustSegments(t, dir) {
		n += s.size
	}
	return n
}

func mustSegments(t testing.TB, dir string) []segment {
	s, err := segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAcrossSegments: outcomes in newer segments than their event attach
// to it, the latest outcome wins, and a limited read returns the newest.
func TestAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)}
	l, err := Open(Options{Dir: dir, Now: c.now, MaxSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.Event(mkev(fmt.Sprintf("e%d", i), "x", event.Info, strings.Repeat("t", 200)), []string{"a"}, nil)
		if i == 0 {
			l.Delivery("e0", "a", "pending", 1, "refused")
		}
		c.t = c.t.Add(time.Second)
	}
	l.Delivery("e0", "a", "done", 2, "")
	l.Close()
	if n := len(mustSegments(t, dir)); n < 3 {
		t.Fatalf("only %d segments: the test needs several", n)
	}
	all, err := Read(dir, Filter{})
	if err != nil || len(all) != 10 || all[0].Event.ID != "e0" || all[9].Event.ID != "e9" {
		t.Fatalf("read %d entries, %v", len(all), err)
	}
	if d := all[0].Deliveries; len(d) != 1 || d[0].State != "done" || d[0].Attempts != 2 {
		t.Fatalf("e0's deliveries %+v", d)
	}
	last, err := Read(dir, Filter{Limit: 3})
	if err != nil || len(last) != 3 || last[0].Event.ID != "e7" || last[2].Event.ID != "e9" {
		t.Fatalf("limited read %+v, %v", last, err)
	}
}

// BenchmarkReadRecent: the status page's read (last 100 events) of a
// history at its default size bound.
func BenchmarkReadRecent(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("log line of a cron job\n", 100) // ~2.3 KiB
	var n int
	for sz := int64(0); sz < DefaultMaxSize*7/8; sz = dirSize(b, dir) {
		for range 1000 {
			n++
			l.Event(&event.Event{ID: fmt.Sprintf("e%d", n), Severity: event.Info, Title: "job done", Body: body,
				Fields: map[string]string{"type": "cron"}}, []string{"mail"}, nil)
			l.Delivery(fmt.Sprintf("e%d", n), "mail", "done", 1, "")
		}
	}
	l.Close()
	b.ResetTimer()
	for range b.N {
		got, err := Read(dir, Filter{Limit: 100})
		if err != nil || len(got) != 100 {
			b.Fatalf("%d, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(n), "events")
}
