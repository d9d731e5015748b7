package monitor

// Tests of the usage watches (usage.go).

import (
	"errors"
	"testing"
	"time"

	"herald/internal/event"
)

func TestUsageHysteresis(t *testing.T) {
	r := &rig{t: t, dir: t.TempDir(), clock: &fakeClock{wall: t0}, sink: &sink{},
		cfg: monitors(t, "usage: vol\n\tpath /srv\n\tthreshold 90\n\tinterval 1m\n\thysteresis 5\n", "")}
	used := 50.0
	e, err := Open(Options{Dir: r.dir, Submit: r.sink.submit, Clock: r.clock, Hostname: "pve1",
		Statfs: func(p string) (Usage, error) {
			if p != "/srv" {
				t.Errorf("statfs %s", p)
			}
			return Usage{Blocks: used, Inodes: 3}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Configure(r.cfg); err != nil {
		t.Fatal(err)
	}
	e.Begin()
	r.e = e
	step := func(u float64) {
		used = u
		r.clock.advance(time.Minute)
		r.tick()
	}
	count := func(sev event.Severity) int {
		n := 0
		for _, ev := range r.sink.events {
			if ev.Severity == sev && ev.Fields[event.FieldType] == TypeUsage {
				n++
			}
		}
		return n
	}
	step(50)
	step(89.9)
	if count(event.Warning) != 0 {
		t.Fatal("warning below the threshold")
	}
	step(90)
	step(95)
	step(86) // inside the hysteresis band
	if count(event.Warning) != 1 || count(event.Info) != 0 {
		t.Fatalf("warnings %d infos %d", count(event.Warning), count(event.Info))
	}
	w := r.sink.events[0]
	if w.Fields[FieldMonitor] != "vol" || w.Fields[FieldPath] != "/srv" || w.Fields[FieldUsedPercent] != "90.0" {
		t.Fatalf("warning fields %v", w.Fields)
	}
	step(84.9)
	if count(event.Info) != 1 {
		t.Fatalf("no info once below threshold-hysteresis")
	}
	step(91)
	if count(event.Warning) != 2 {
		t.Fatal("no second warning")
	}
	// Checks happen per interval, not per evaluation.
	used = 10
	r.clock.advance(30 * time.Second)
	r.tick()
	if count(event.Info) != 1 {
		t.Fatal("polled before its interval")
	}
}

func TestUsageUnreadableWarnsOnce(t *testing.T) {
	r := &rig{t: t, dir: t.TempDir(), clock: &fakeClock{wall: t0}, sink: &sink{},
		cfg: monitors(t, "usage: vol\n\tpath /srv/gone\n\tthreshold 90\n\tinterval 1m\n", "")}
	fail := true
	e, err := Open(Options{Dir: r.dir, Submit: r.sink.submit, Clock: r.clock, Statfs: func(string) (Usage, error) {
		if fail {
			return Usage{}, errors.New("no such file or directory")
		}
		return Usage{Blocks: 10}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Configure(r.cfg); err != nil {
		t.Fatal(err)
	}
	r.e = e
	for range 3 {
		r.clock.advance(time.Minute)
		r.tick()
	}
	if len(r.sink.events) != 1 || r.sink.events[0].Severity != event.Warning || r.sink.events[0].Fields["error"] == "" {
		t.Fatalf("events %v", titles(r.sink.events))
	}
	if st := r.e.List()[0]; st.Error == "" {
		t.Fatalf("status without the error: %+v", st)
	}
	fail = false
	r.clock.advance(time.Minute)
	r.tick()
	if st := r.e.List()[0]; st.Error != "" || st.State != StateUp {
		t.Fatalf("status after recovery: %+v", st)
	}
	if len(r.sink.events) != 1 {
		t.Fatalf("events after recovery %v", titles(r.sink.events))
	}
}

func TestStatfsReal(t *testing.T) {
	u, err := Statfs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u.Blocks < 0 || u.Blocks > 100 || u.Inodes < 0 || u.Inodes > 100 {
		t.Fatalf("usage %+v", u)
	}
	if _, err := Statfs("/does/not/exist"); err == nil {
		t.Fatal("statfs of a missing path succeeded")
	}
}
