package router

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// corpusEvents are events across every severity and the field values the
// test configurations select on, with fields absent, empty and unusual.
func corpusEvents() []*event.Event {
	var out []*event.Event
	sevs := append(event.Severities(), event.Severity(42))
	fieldSets := [][]string{
		nil,
		{"type", "vzdump", "hostname", "pve1", "job-id", "backup-1"},
		{"type", "vzdump", "hostname", "node-4"},
		{"type", "gc", "datastore", "store1", "hostname", "node-1"},
		{"type", "prune", "datastore", "d1"},
		{"type", "system-mail", "hostname", "node-7"},
		{"type", "fencing"},
		{"type", "replication", "job-id", "100-0"},
		{"type", "smartd", "hostname", "other"},
		{"type", "package-updates", "hostname", ""},
		{"type", "cron", "hostname", "NODE-10\n"},
		{"type", "GC", "datastore", "backup-01", "hostname", "\xffnode"},
		{"hostname", "testhost", "job-id", "x"},
	}
	for _, sev := range sevs {
		for _, fs := range fieldSets {
			out = append(out, mkEvent(sev, fs...))
		}
	}
	return out
}

// corpusTimes sample the week hour by hour and the edges of the windows
// the test configurations use.
func corpusTimes() []time.Time {
	base := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC) // Monday
	var out []time.Time
	for h := 0; h < 7*24; h += 5 {
		out = append(out, base.Add(time.Duration(h)*time.Hour))
	}
	hm := func(h, m, sec int) time.Duration {
		return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	}
	for _, clock := range []time.Duration{hm(7, 59, 0), hm(8, 0, 0), hm(8, 59, 59), hm(9, 0, 0), hm(16, 59, 0),
		hm(17, 0, 0), hm(18, 29, 0), hm(18, 30, 0), hm(23, 59, 59)} {
		out = append(out, base.Add(clock), base.Add(5*24*time.Hour+clock)) // Monday and Saturday
	}
	return out
}

// agree routes every event at every time through both paths, in two
// zones, and fails on the first difference.
func agree(t *testing.T, name string, cfg *config.Config, events []*event.Event, times []time.Time) {
	t.Helper()
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Fatal(err)
	}
	for _, loc := range []*time.Location{time.UTC, vienna} {
		fast := New(cfg, loc)
		slow := &Router{Config: cfg, Location: loc}
		for i, ev := range events {
			for j, at := range times {
				want := slow.Route(ev, at).Targets
				got := fast.Targets(nil, ev, at)
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Fatalf("%s, %s, %v %v at %s: Targets %q, Route %q\n%s",
						name, loc, ev.Severity, ev.Fields, at.Format(time.RFC3339), got, want, dump(slow.Route(ev, at)))
				}
				// Without New the plan is compiled per call: same answer
				// (checked on a sample; compiling is what makes it slow).
				if (i+j)%13 != 0 {
					continue
				}
				if got := slow.Targets(nil, ev, at); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Fatalf("%s: Targets without New %q, Route %q", name, got, want)
				}
			}
		}
		// Targets appends: what dst held stays in front.
		ev, at := events[len(events)/2], times[len(times)/2]
		got := fast.Targets([]string{"keep"}, ev, at)
		if got[0] != "keep" || !slices.Equal(got[1:], slow.Route(ev, at).Targets) {
			t.Fatalf("%s: Targets with a dst: %q", name, got)
		}
	}
}

// TestTargetsAgreeWithRoute holds the daemon's fast path to the explaining
// path: for the shipped example configurations, TestRoute's cases and the
// benchmark's config, both return the same targets in the same order.
func TestTargetsAgreeWithRoute(t *testing.T) {
	events, times := corpusEvents(), corpusTimes()
	files, err := filepath.Glob("../../testdata/config/*.cfg")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configurations: %v", err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".priv.cfg") {
			continue
		}
		pub, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		priv, _ := os.ReadFile(strings.TrimSuffix(f, ".cfg") + ".priv.cfg") // none is fine
		for _, flavor := range []config.Flavor{config.FlavorPVE, config.FlavorPBS} {
			for _, extra := range []string{"", "\n" + silence} {
				cfg, err := config.Parse("notifications.cfg", append(pub, extra...), "notifications-priv.cfg", priv, config.LoadOptions{Flavor: flavor})
				if err != nil {
					continue // not a notifications.cfg (heartbeats need herald.cfg context, ...)
				}
				agree(t, fmt.Sprintf("%s flavor %v", filepath.Base(f), flavor), cfg, events, times)
				n++
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d example configurations loaded", n)
	}
	for _, tc := range routeCases() {
		cfg := parse(t, tc.pub, "", tc.flavor)
		agree(t, tc.name, cfg, append(events, tc.ev), append(times, tc.at))
	}
	agree(t, "benchmark", benchConfig(t), events, times)

	// A hand-built config: unknown names and members, an empty mode.
	hand := &config.Config{
		Targets: parse(t, targets, "", config.FlavorPVE).Targets,
		Matchers: []*config.Matcher{
			{Name: "m", Targets: []string{"ghost", "t-a", "ghost"}},
			{Name: "m2", Mode: "any", Targets: []string{"g", "t-off"}},
		},
		Groups: []*config.Group{{Name: "g", Endpoints: []string{"ghost2", "t-b", "t-off"}, Filter: "missing"}},
	}
	agree(t, "hand-built", hand, events, times)
}

// TestTargetsRandomConfigs is the property test: random configurations of
// every rule kind, mode, inversion, disabled sections, legacy groups and
// filters route every corpus event identically on both paths.
func TestTargetsRandomConfigs(t *testing.T) {
	events := corpusEvents()
	var times []time.Time // every other corpus time: many configs, each cheaper
	for i, at := range corpusTimes() {
		if i%2 == 0 {
			times = append(times, at)
		}
	}
	rounds := 100
	if testing.Short() {
		rounds = 30
	}
	for seed := range rounds {
		rng := rand.New(rand.NewPCG(uint64(seed), 14))
		text, priv := randomConfig(rng)
		cfg, err := config.Parse("notifications.cfg", []byte(text), "notifications-priv.cfg", []byte(priv), config.LoadOptions{})
		if err != nil {
			t.Fatalf("seed %d: the generator wrote a config the loader refuses:\n%v\n%s", seed, err, text)
		}
		agree(t, fmt.Sprintf("seed %d", seed), cfg, events, times)
	}
}

func randomConfig(rng *rand.Rand) (pub, priv string) {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var s strings.Builder
	nFilters := rng.IntN(3)
	for i := range nFilters {
		fmt.Fprintf(&s, "filter: f%d\n", i)
		if rng.IntN(3) > 0 {
			fmt.Fprintf(&s, "\tmin-severity %s\n", pick("info", "notice", "warning", "error", "unknown"))
		}
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&s, "\tmode %s\n", pick("and", "or"))
		}
		if rng.IntN(3) == 0 {
			s.WriteString("\tinvert-match true\n")
		}
		s.WriteString("\n")
	}
	nTargets := 1 + rng.IntN(6)
	for i := range nTargets {
		fmt.Fprintf(&s, "sendmail: t%d\n\tmailto t%d@example.com\n", i, i)
		if rng.IntN(5) == 0 {
			s.WriteString("\tdisable true\n")
		}
		if nFilters > 0 && rng.IntN(4) == 0 {
			fmt.Fprintf(&s, "\tfilter f%d\n", rng.IntN(nFilters))
		}
		s.WriteString("\n")
	}
	nGroups := rng.IntN(3)
	for i := range nGroups {
		fmt.Fprintf(&s, "group: g%d\n", i)
		for range 1 + rng.IntN(3) {
			fmt.Fprintf(&s, "\tendpoint t%d\n", rng.IntN(nTargets))
		}
		if nFilters > 0 && rng.IntN(2) == 0 {
			fmt.Fprintf(&s, "\tfilter f%d\n", rng.IntN(nFilters))
		}
		s.WriteString("\n")
	}
	name := func() string {
		if nGroups > 0 && rng.IntN(3) == 0 {
			return fmt.Sprintf("g%d", rng.IntN(nGroups))
		}
		if rng.IntN(4) == 0 {
			return pick("mail-to-root", "t0")
		}
		return fmt.Sprintf("t%d", rng.IntN(nTargets))
	}
	for i := range 1 + rng.IntN(12) {
		if i == 0 && rng.IntN(2) == 0 {
			s.WriteString("matcher: default-matcher\n")
		} else {
			fmt.Fprintf(&s, "matcher: m%d\n", i)
		}
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&s, "\tmode %s\n", pick("all", "any"))
		}
		if rng.IntN(4) == 0 {
			s.WriteString("\tinvert-match true\n")
		}
		if rng.IntN(8) == 0 {
			s.WriteString("\tdisable true\n")
		}
		for range rng.IntN(4) {
			switch rng.IntN(3) {
			case 0:
				fmt.Fprintf(&s, "\tmatch-severity %s\n", pick("error", "warning,error", "info,notice", "unknown", "info,notice,warning,error,unknown"))
			case 1:
				fmt.Fprintf(&s, "\tmatch-field %s\n", pick(
					"exact:type=vzdump", "exact:type=gc,prune", "exact:hostname=", "exact:job-id=backup-1,100-0",
					"regex:hostname=^node-", "regex:hostname=node", "regex:hostname=1$", "regex:type=^gc$",
					"regex:type=(?i)gc", "regex:type=^(gc|prune)$", "regex:datastore=.*", "regex:hostname=",
					"regex:hostname=n.de", "regex:hostname=(?m)^NODE-10$", "regex:hostname=\\x{fffd}"))
			case 2:
				fmt.Fprintf(&s, "\tmatch-calendar %s\n", pick("mon..fri 8:00-18:30", "sat,sun 0-23:59", "9-17", "sat..mon 0-8", "tue 16:59-17:00"))
			}
		}
		for range rng.IntN(4) {
			fmt.Fprintf(&s, "\ttarget %s\n", name())
		}
		s.WriteString("\n")
	}
	return s.String(), ""
}

// TestTargetsAllocatesNothing: the daemon's routing of one event
// allocates nothing beyond the slice it returns, here given up front.
func TestTargetsAllocatesNothing(t *testing.T) {
	r := New(benchConfig(t), time.UTC)
	events := corpusEvents()
	at := time.Date(2025, 6, 4, 11, 0, 0, 0, time.UTC)
	dst := make([]string, 0, 32)
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		dst = r.Targets(dst[:0], events[i%len(events)], at)
		i++
	})
	if allocs != 0 {
		t.Errorf("Targets allocates %.1f times per event, want 0", allocs)
	}
}

// TestMatchesAgreesWithEvaluate: the explanation-free check of one
// matcher (noise rules, heartbeats) decides as Evaluate does, for every
// matcher of the random configurations.
func TestMatchesAgreesWithEvaluate(t *testing.T) {
	events, times := corpusEvents(), corpusTimes()
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Fatal(err)
	}
	for seed := range 40 {
		rng := rand.New(rand.NewPCG(uint64(seed), 15))
		text, priv := randomConfig(rng)
		cfg, err := config.Parse("notifications.cfg", []byte(text), "notifications-priv.cfg", []byte(priv), config.LoadOptions{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, m := range cfg.Matchers {
			for _, loc := range []*time.Location{time.UTC, vienna} {
				for _, ev := range events {
					for _, at := range times {
						if got, want := Matches(m, ev, at, loc), Evaluate(m, ev, at, loc).Matched; got != want {
							t.Fatalf("seed %d matcher %s, %s, %v %v at %s: Matches %v, Evaluate %v",
								seed, m.Name, loc, ev.Severity, ev.Fields, at.Format(time.RFC3339), got, want)
						}
					}
				}
			}
		}
	}
}
