package router

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// benchConfig builds 20 targets and 100 matchers mixing every rule kind,
// both modes and invert-match.
func benchConfig(b testing.TB) *config.Config {
	var s strings.Builder
	for i := range 20 {
		fmt.Fprintf(&s, "sendmail: target-%02d\n\tmailto t%d@example.com\n\n", i, i)
	}
	types := []string{"vzdump", "gc", "prune", "system-mail", "replication", "smartd", "cron"}
	for i := range 100 {
		fmt.Fprintf(&s, "matcher: matcher-%03d\n", i)
		if i%3 == 0 {
			s.WriteString("\tmode any\n")
		}
		if i%7 == 0 {
			s.WriteString("\tinvert-match true\n")
		}
		switch i % 4 {
		case 0:
			s.WriteString("\tmatch-severity warning,error\n")
		case 1:
			s.WriteString("\tmatch-severity error\n\tmatch-severity unknown\n")
		}
		fmt.Fprintf(&s, "\tmatch-field exact:type=%s,%s\n", types[i%len(types)], types[(i+3)%len(types)])
		if i%2 == 0 {
			fmt.Fprintf(&s, "\tmatch-field regex:hostname=^node-%d\n", i%10)
		}
		if i%5 == 0 {
			s.WriteString("\tmatch-calendar mon..fri 8:00-18:30\n")
		}
		if i%11 == 0 {
			s.WriteString("\tmatch-calendar sat,sun 0-23:59\n")
		}
		fmt.Fprintf(&s, "\ttarget target-%02d\n\ttarget target-%02d\n\n", i%20, (i*7)%20)
	}
	cfg, err := config.Parse("bench.cfg", []byte(s.String()), "bench-priv.cfg", nil, config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchEvents are the events both benchmarks route in turn.
func benchEvents() []*event.Event {
	return []*event.Event{
		mkEvent(event.Error, "type", "vzdump", "hostname", "node-4", "job-id", "backup-1"),
		mkEvent(event.Info, "type", "gc", "hostname", "node-1", "datastore", "store1"),
		mkEvent(event.Unknown, "type", "system-mail", "hostname", "node-7"),
		mkEvent(event.Warning, "type", "smartd", "hostname", "other"),
	}
}

// BenchmarkRouteTargets100Matchers measures the daemon's routing path:
// Targets on a Router built with New, no explanation.
func BenchmarkRouteTargets100Matchers(b *testing.B) {
	r := New(benchConfig(b), time.UTC)
	events := benchEvents()
	at := time.Date(2025, 6, 4, 11, 0, 0, 0, time.UTC)
	targets := 0
	dst := make([]string, 0, 32)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	n := 0
	for i := 0; b.Loop(); i++ {
		dst = r.Targets(dst[:0], events[i%len(events)], at)
		targets += len(dst)
		n++
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(n), "cpu-ns/op")
	if targets == 0 {
		b.Fatal("no event was routed anywhere: the benchmark config is wrong")
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRoute100Matchers measures the explaining path (herald explain,
// herald test): Route with every matcher's and rule's explanation.
func BenchmarkRoute100Matchers(b *testing.B) {
	r := &Router{Config: benchConfig(b), Location: time.UTC}
	events := benchEvents()
	at := time.Date(2025, 6, 4, 11, 0, 0, 0, time.UTC)
	targets := 0
	b.ReportAllocs()
	// The test machine is shared: wall time per op can be inflated by other
	// processes, so report the process CPU time per op as well.
	cpu0 := cpuTime(b)
	n := 0
	for i := 0; b.Loop(); i++ {
		targets += len(r.Route(events[i%len(events)], at).Targets)
		n++
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(n), "cpu-ns/op")
	if targets == 0 {
		b.Fatal("no event was routed anywhere: the benchmark config is wrong")
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// cpuTime returns the user+system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
