package monitor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/safeio"
)

// fakeClock moves the three clocks of Clock by hand.
type fakeClock struct {
	wall       time.Time
	boot, mono time.Duration
}

func (c *fakeClock) Now() time.Time      { return c.wall }
func (c *fakeClock) Boot() time.Duration { return c.boot }
func (c *fakeClock) Mono() time.Duration { return c.mono }

// advance lets real time pass.
func (c *fakeClock) advance(d time.Duration) {
	c.wall, c.boot, c.mono = c.wall.Add(d), c.boot+d, c.mono+d
}

// step moves the wall clock only (NTP, date -s).
func (c *fakeClock) step(d time.Duration) { c.wall = c.wall.Add(d) }

// suspend lets real time pass while the machine sleeps.
func (c *fakeClock) suspend(d time.Duration) { c.wall, c.boot = c.wall.Add(d), c.boot+d }

// t0 is a Wednesday, 02:00 UTC.
var t0 = time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)

// sink records what the engine submits to the spool.
type sink struct {
	events []*event.Event
	fail   error
}

func (s *sink) submit(ev *event.Event) error {
	if s.fail != nil {
		return s.fail
	}
	c := *ev
	s.events = append(s.events, &c)
	return nil
}

// of returns the heartbeat events for monitor with that status.
func (s *sink) of(monitor, status string) []*event.Event {
	var out []*event.Event
	for _, ev := range s.events {
		if ev.Fields[FieldMonitor] == monitor && ev.Fields[FieldStatus] == status {
			out = append(out, ev)
		}
	}
	return out
}

func monitors(t *testing.T, pub, priv string) config.Monitors {
	t.Helper()
	cfg, err := config.Parse("n.cfg", []byte(pub), "p.cfg", []byte(priv), config.LoadOptions{})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.Monitors
}

type rig struct {
	t     *testing.T
	dir   string
	clock *fakeClock
	sink  *sink
	cfg   config.Monitors
	e     *Engine
}

func newRig(t *testing.T, pub, priv string) *rig {
	r := &rig{t: t, dir: t.TempDir(), clock: &fakeClock{wall: t0, boot: time.Hour, mono: time.Hour}, sink: &sink{},
		cfg: monitors(t, pub, priv)}
	r.open(nil)
	return r
}

// open starts a fresh engine on the rig's state directory, as a restart
// of the daemon does.
func (r *rig) open(hook func(string) error) {
	r.t.Helper()
	e, err := Open(Options{Dir: r.dir, Submit: r.sink.submit, Clock: r.clock, Location: time.UTC,
		Hostname: "pve1", hook: hook})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := e.Configure(r.cfg); err != nil && hook == nil {
		r.t.Fatal(err)
	}
	e.Begin()
	r.e = e
}

func (r *rig) tick() { r.e.tick() }

func (r *rig) feed(typ string, sev event.Severity, at time.Time) error {
	return r.e.Feed(&event.Event{ID: event.NewID(), Timestamp: at, Severity: sev,
		Fields: map[string]string{event.FieldType: typ, event.FieldHostname: "pve1"}})
}

func (r *rig) state(name string) string {
	for _, s := range r.e.List() {
		if s.Name == name {
			return s.State
		}
	}
	return "absent"
}

func (r *rig) wantEvents(monitor, status string, n int) {
	r.t.Helper()
	if got := len(r.sink.of(monitor, status)); got != n {
		r.t.Fatalf("%s %s events: got %d, want %d (all: %v)", monitor, status, got, n, titles(r.sink.events))
	}
}

func titles(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Title)
	}
	return out
}

const nightly = "heartbeat: nightly\n\tmatch-field exact:type=vzdump\n\tperiod 24h\n\tgrace 2h\n"

func TestPeriodDeadlineGraceAndRecovery(t *testing.T) {
	r := newRig(t, nightly, "")
	if s := r.state("nightly"); s != StateNew {
		t.Fatalf("state %s, want new", s)
	}
	r.clock.advance(26*time.Hour - time.Second)
	r.tick()
	r.wantEvents("nightly", StatusDown, 0)
	r.clock.advance(time.Second)
	r.tick()
	r.wantEvents("nightly", StatusDown, 1)
	down := r.sink.of("nightly", StatusDown)[0]
	if down.Severity != event.Error || down.Fields[event.FieldType] != TypeHeartbeat || down.Fields[FieldReason] != ReasonMissed ||
		down.Fields[FieldLastSuccess] != "never" {
		t.Fatalf("down event: %+v", down)
	}
	for range 5 {
		r.clock.advance(24 * time.Hour)
		r.tick()
	}
	r.wantEvents("nightly", StatusDown, 1) // one per outage, without repeat
	if s := r.state("nightly"); s != StateDown {
		t.Fatalf("state %s, want down", s)
	}
	ok := r.clock.wall.Add(-time.Minute)
	if err := r.feed("vzdump", event.Info, ok); err != nil {
		t.Fatal(err)
	}
	r.wantEvents("nightly", StatusUp, 1)
	up := r.sink.of("nightly", StatusUp)[0]
	if up.Severity != event.Info || up.Fields[FieldLastSuccess] != ok.UTC().Format(time.RFC3339) {
		t.Fatalf("up event: %+v", up)
	}
	// The next deadline counts from the success's own time.
	r.clock.advance(26*time.Hour - 2*time.Minute)
	r.tick()
	r.wantEvents("nightly", StatusDown, 1)
	r.clock.advance(2 * time.Minute)
	r.tick()
	r.wantEvents("nightly", StatusDown, 2)
}

func TestSuccessesKeepItUp(t *testing.T) {
	r := newRig(t, nightly, "")
	for range 10 {
		r.clock.advance(25 * time.Hour) // late but within grace
		if err := r.feed("vzdump", event.Notice, r.clock.wall); err != nil {
			t.Fatal(err)
		}
		r.tick()
	}
	r.wantEvents("nightly", StatusDown, 0)
	// Other types and herald's own heartbeat events do not count.
	r.clock.advance(25 * time.Hour)
	_ = r.feed("cron", event.Info, r.clock.wall)
	_ = r.feed(TypeHeartbeat, event.Info, r.clock.wall)
	r.clock.advance(time.Hour)
	r.tick()
	r.wantEvents("nightly", StatusDown, 1)
}

func TestAlertAfterMissed(t *testing.T) {
	r := newRig(t, "heartbeat: hourly\n\tmatch-field exact:type=job\n\tperiod 1h\n\tgrace 5m\n\talert-after-missed 3\n", "")
	r.clock.advance(3*time.Hour + 4*time.Minute)
	r.tick()
	r.wantEvents("hourly", StatusDown, 0)
	r.clock.advance(time.Minute)
	r.tick()
	r.wantEvents("hourly", StatusDown, 1)
}

func TestAlertAfterFailures(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=job\n\tperiod 1h\n\talert-after-failures 2\n", "")
	r.clock.advance(time.Minute)
	if err := r.feed("job", event.Error, r.clock.wall); err != nil {
		t.Fatal(err)
	}
	r.wantEvents("job", StatusDown, 0)
	r.clock.advance(time.Minute)
	_ = r.feed("job", event.Info, r.clock.wall) // a success ends the streak
	r.clock.advance(time.Minute)
	_ = r.feed("job", event.Warning, r.clock.wall)
	r.wantEvents("job", StatusDown, 0)
	r.clock.advance(time.Minute)
	_ = r.feed("job", event.Error, r.clock.wall)
	r.wantEvents("job", StatusDown, 1)
	if d := r.sink.of("job", StatusDown)[0]; d.Fields[FieldReason] != ReasonFailed {
		t.Fatalf("reason %q, want failed", d.Fields[FieldReason])
	}
	r.clock.advance(time.Minute)
	_ = r.feed("job", event.Error, r.clock.wall)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
	r.clock.advance(time.Minute)
	_ = r.feed("job", event.Info, r.clock.wall)
	r.wantEvents("job", StatusUp, 1)
	if s := r.state("job"); s != StateUp {
		t.Fatalf("state %s", s)
	}
}

func TestFailureSeverityOverride(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=job\n\tperiod 1h\n\tfailure-severity error\n", "")
	_ = r.feed("job", event.Warning, r.clock.wall) // a success here
	r.wantEvents("job", StatusDown, 0)
	if s := r.state("job"); s != StateUp {
		t.Fatalf("warning with failure-severity error: state %s, want up", s)
	}
	_ = r.feed("job", event.Error, r.clock.wall.Add(time.Second))
	r.wantEvents("job", StatusDown, 1)
}

func TestRepeat(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=job\n\tperiod 1h\n\trepeat 2h\n", "")
	r.clock.advance(time.Hour)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
	r.clock.advance(2*time.Hour - time.Second)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
	r.clock.advance(time.Second)
	r.tick()
	r.wantEvents("job", StatusDown, 2)
	if !strings.HasSuffix(r.sink.of("job", StatusDown)[1].Title, "(still)") {
		t.Fatalf("repeat title: %q", r.sink.of("job", StatusDown)[1].Title)
	}
	_ = r.feed("job", event.Info, r.clock.wall)
	r.clock.advance(59 * time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 2)
	r.wantEvents("job", StatusUp, 1)
}

func TestSchedule(t *testing.T) {
	// Loaded at 02:00: the 03:00 run is due by 04:00 the same day.
	r := newRig(t, "heartbeat: backup\n\tmatch-field exact:type=bacula\n\tschedule mon..fri 03:00\n\tgrace 1h\n", "")
	r.clock.advance(70 * time.Minute) // 03:10
	_ = r.feed("bacula", event.Info, r.clock.wall)
	st := r.e.List()[0]
	// Thursday 03:00 + grace.
	if want := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC); st.NextDeadline == nil || !st.NextDeadline.Equal(want) {
		t.Fatalf("next deadline %v, want %v", st.NextDeadline, want)
	}
	// Thursday's run succeeds; Friday's does not.
	r.clock.advance(24 * time.Hour) // Thu 03:10
	_ = r.feed("bacula", event.Info, r.clock.wall)
	r.clock.advance(24*time.Hour + 49*time.Minute) // Fri 03:59
	r.tick()
	r.wantEvents("backup", StatusDown, 0)
	r.clock.advance(time.Minute) // Fri 04:00
	r.tick()
	r.wantEvents("backup", StatusDown, 1)
	// A weekend passes: nothing more, it is already down.
	r.clock.advance(72 * time.Hour)
	r.tick()
	r.wantEvents("backup", StatusDown, 1)
}

func TestScheduleWeekend(t *testing.T) {
	// A success on Friday covers the weekend: Monday 03:00 + grace is due.
	r := newRig(t, "heartbeat: backup\n\tmatch-field exact:type=bacula\n\tschedule mon..fri 03:00\n\tgrace 1h\n", "")
	r.clock.advance(2*24*time.Hour + time.Hour + 10*time.Minute) // Fri 03:10
	r.tick()
	_ = r.feed("bacula", event.Info, r.clock.wall)
	r.wantEvents("backup", StatusDown, 1) // Wednesday's and Thursday's runs never came
	r.wantEvents("backup", StatusUp, 1)
	r.clock.advance(3*24*time.Hour + 49*time.Minute) // Mon 03:59
	r.tick()
	r.wantEvents("backup", StatusDown, 1)
	r.clock.advance(time.Minute)
	r.tick()
	r.wantEvents("backup", StatusDown, 2)
}

// TestCrashAtEveryPoint crashes the engine at each point of raising a down
// event (by a deadline and by failures) and of raising an up event, then
// restarts it: exactly one event ID per transition reaches the spool. A
// second submission of the same ID (crash after the spool took it) is a
// duplicate the delivery queue drops, so distinct IDs are what is counted.
func TestCrashAtEveryPoint(t *testing.T) {
	crash := errors.New("crash")
	for _, point := range []string{pointDecided, pointCommitted, pointSubmitted} {
		for _, how := range []string{"missed", "failed", "up"} {
			t.Run(point+"/"+how, func(t *testing.T) {
				r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
				if how == "up" {
					r.clock.advance(time.Hour)
					r.tick()
					r.wantEvents("job", StatusDown, 1)
				}
				crashed := false
				r.open(func(p string) error {
					if p == point && !crashed {
						crashed = true
						return crash
					}
					return nil
				})
				r.clock.advance(time.Hour)
				switch how {
				case "missed":
					r.tick()
				case "failed":
					if err := r.feed("x", event.Error, r.clock.wall); err == nil && point != pointSubmitted {
						t.Fatalf("Feed returned nil through a crash at %s", point)
					}
				case "up":
					_ = r.feed("x", event.Info, r.clock.wall)
				}
				if !crashed {
					t.Fatalf("never reached %s", point)
				}
				status := StatusDown
				if how == "up" {
					status = StatusUp
				}
				// The daemon dies here. What it had not fed stays in the
				// spool and is fed again after the restart.
				r.open(nil)
				if how != "missed" && point == pointDecided {
					if err := r.feed("x", map[string]event.Severity{"failed": event.Error, "up": event.Info}[how], r.clock.wall); err != nil {
						t.Fatal(err)
					}
				}
				r.tick()
				r.clock.advance(10 * time.Minute)
				r.tick()
				ids := map[string]bool{}
				for _, ev := range r.sink.of("job", status) {
					ids[ev.ID] = true
				}
				want := 1
				if how == "up" {
					if len(ids) != 1 {
						t.Fatalf("up events: %d distinct IDs (%v)", len(ids), titles(r.sink.events))
					}
					return
				}
				if len(ids) != want {
					t.Fatalf("%s events: %d distinct IDs, want %d (%v)", status, len(ids), want, titles(r.sink.events))
				}
				r.e.mu.Lock()
				left := len(r.e.st.Outbox)
				r.e.mu.Unlock()
				if left != 0 {
					t.Fatalf("outbox not empty after restart: %d", left)
				}
			})
		}
	}
}

func TestSpoolRefusalKeepsTheEvent(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.sink.fail = errors.New("disk full")
	r.clock.advance(time.Hour)
	r.tick()
	r.wantEvents("job", StatusDown, 0)
	if s := r.state("job"); s != StateDown {
		t.Fatalf("state %s: the outage is recorded even when the spool refuses", s)
	}
	r.sink.fail = nil
	r.clock.advance(5 * time.Second)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
}

func TestFeedIsIdempotent(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n\talert-after-failures 2\n", "")
	ev := &event.Event{ID: event.NewID(), Timestamp: r.clock.wall, Severity: event.Error,
		Fields: map[string]string{event.FieldType: "x"}}
	for range 3 {
		if err := r.e.Feed(ev); err != nil {
			t.Fatal(err)
		}
	}
	r.wantEvents("job", StatusDown, 0)
	if st := r.e.List()[0]; st.Failures != 1 {
		t.Fatalf("failures %d, want 1", st.Failures)
	}
}

func TestPush(t *testing.T) {
	r := newRig(t, "heartbeat: kuma\n\tperiod 26h\n", "heartbeat: kuma\n\tpush-token tok-4711-abc\n")
	push := func(status string) {
		_ = r.e.Feed(&event.Event{ID: event.NewID(), Timestamp: r.clock.wall, Severity: event.Info,
			Fields: map[string]string{event.FieldType: TypePush, FieldMonitor: "kuma", FieldStatus: status}})
	}
	r.clock.advance(time.Hour)
	push(StatusUp)
	if s := r.state("kuma"); s != StateUp {
		t.Fatalf("state %s", s)
	}
	r.clock.advance(26 * time.Hour)
	r.tick()
	r.wantEvents("kuma", StatusDown, 1)
	push(StatusUp)
	r.wantEvents("kuma", StatusUp, 1)
	push(StatusDown)
	r.wantEvents("kuma", StatusDown, 2)
}

func TestPauseResume(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	if err := r.e.Pause("job"); err != nil {
		t.Fatal(err)
	}
	if err := r.e.Pause("nope"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("pause unknown: %v", err)
	}
	r.clock.advance(5 * time.Hour)
	r.tick()
	r.open(nil) // the pause is durable
	r.tick()
	r.wantEvents("job", StatusDown, 0)
	if s := r.state("job"); s != StatePaused {
		t.Fatalf("state %s", s)
	}
	if err := r.e.Resume("job"); err != nil {
		t.Fatal(err)
	}
	r.clock.advance(59 * time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 0) // the clock started afresh
	r.clock.advance(time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
}

func TestReloadKeepsUnchangedState(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.clock.advance(50 * time.Minute)
	if err := r.e.Configure(monitors(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n\tcomment x\n\n"+
		"heartbeat: fresh\n\tmatch-field exact:type=y\n\tperiod 1h\n", "")); err != nil {
		t.Fatal(err)
	}
	r.clock.advance(10 * time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
	r.wantEvents("fresh", StatusDown, 0) // its clock started at the reload
	r.clock.advance(50 * time.Minute)
	r.tick()
	r.wantEvents("fresh", StatusDown, 1)
}

func TestReenabledStartsAfresh(t *testing.T) {
	const on = "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n"
	r := newRig(t, on+"\tdisable true\n", "")
	r.clock.advance(5 * time.Hour)
	r.tick()
	r.wantEvents("job", StatusDown, 0)
	if err := r.e.Configure(monitors(t, on, "")); err != nil {
		t.Fatal(err)
	}
	r.tick()
	r.wantEvents("job", StatusDown, 0) // the disabled hours are no miss
	r.clock.advance(time.Hour)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
}

func TestCorruptStateIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, Submit: (&sink{}).submit}); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, stateFile+".corrupt-*"))
	if len(m) != 1 {
		t.Fatalf("corrupt state not kept aside: %v", m)
	}
}

// TestStateWriteFailsAtEveryStep fails the state write of a down
// transition at each step of the durable write (internal/safeio), once,
// then lets the engine go on, and restarts it: one down event reaches the
// spool in every case.
func TestStateWriteFailsAtEveryStep(t *testing.T) {
	defer func() { safeio.FailHook = nil }()
	for _, step := range []safeio.Step{safeio.StepCreate, safeio.StepWrite, safeio.StepSync, safeio.StepClose,
		safeio.StepRename, safeio.StepSyncDir} {
		t.Run(string(step), func(t *testing.T) {
			r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
			failed := false
			safeio.FailHook = func(s safeio.Step, path string) error {
				ours := strings.Contains(filepath.Base(path), stateFile) || filepath.Clean(path) == filepath.Clean(r.dir)
				if s == step && !failed && ours {
					failed = true
					return errors.New("injected")
				}
				return nil
			}
			r.clock.advance(time.Hour)
			r.tick()
			safeio.FailHook = nil
			if !failed {
				t.Fatalf("the write never reached %s", step)
			}
			r.clock.advance(10 * time.Second)
			r.tick()
			r.open(nil)
			r.tick()
			ids := map[string]bool{}
			for _, ev := range r.sink.of("job", StatusDown) {
				ids[ev.ID] = true
			}
			if len(ids) != 1 {
				t.Fatalf("%d distinct down events, want 1 (%v)", len(ids), titles(r.sink.events))
			}
		})
	}
}
