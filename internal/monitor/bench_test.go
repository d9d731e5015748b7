package monitor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

// benchRig is an engine with 20 heartbeats watching distinct types.
func benchRig(b *testing.B) *Engine {
	var cfg strings.Builder
	for i := range 20 {
		fmt.Fprintf(&cfg, "heartbeat: hb%d\n\tmatch-field exact:type=job%d\n\tperiod 1h\n\n", i, i)
	}
	t := &testing.T{}
	m := monitors(t, cfg.String(), "")
	e, err := Open(Options{Dir: b.TempDir(), Submit: (&sink{}).submit, Clock: &fakeClock{wall: t0}})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Configure(m); err != nil {
		b.Fatal(err)
	}
	return e
}

// An event no heartbeat watches: what every routed event costs.
func BenchmarkFeedNoMatch(b *testing.B) {
	e := benchRig(b)
	ev := &event.Event{ID: "x", Timestamp: t0, Severity: event.Info, Fields: map[string]string{"type": "cron"}}
	b.ResetTimer()
	for range b.N {
		if err := e.Feed(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// A success of one heartbeat: a durable state write per event.
func BenchmarkFeedSuccess(b *testing.B) {
	e := benchRig(b)
	b.ResetTimer()
	for i := range b.N {
		ev := &event.Event{ID: fmt.Sprint("e", i), Timestamp: t0.Add(time.Duration(i) * time.Second), Severity: event.Info,
			Fields: map[string]string{"type": "job3"}}
		if err := e.Feed(ev); err != nil {
			b.Fatal(err)
		}
	}
}
