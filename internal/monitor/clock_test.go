package monitor

// Tests of how heartbeats take clock steps, suspends and restarts (clock.go, monitor.go's observeClock).

import (
	"testing"
	"time"

	"herald/internal/event"
)

func TestClockStepForwardFiresNothing(t *testing.T) {
	r := newRig(t, nightly+"\nheartbeat: other\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.clock.advance(30 * time.Minute)
	r.tick()
	r.clock.step(72 * time.Hour)
	r.tick()
	r.wantEvents("nightly", StatusDown, 0)
	r.wantEvents("other", StatusDown, 0)
	// Each keeps the real time it had left: other 30 min, nightly 25.5 h.
	r.clock.advance(29 * time.Minute)
	r.tick()
	r.wantEvents("other", StatusDown, 0)
	r.clock.advance(time.Minute)
	r.tick()
	r.wantEvents("other", StatusDown, 1)
	r.clock.advance(25 * time.Hour)
	r.tick()
	r.wantEvents("nightly", StatusDown, 1)
}

func TestClockStepBackHidesNoMiss(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.clock.advance(30 * time.Minute)
	r.tick()
	r.clock.step(-48 * time.Hour)
	r.tick()
	r.clock.advance(30 * time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
}

func TestClockStepBackThenSuccessCounts(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.clock.advance(20 * time.Minute)
	_ = r.feed("x", event.Info, r.clock.wall) // read on a clock a day fast
	r.tick()
	r.clock.step(-24 * time.Hour) // NTP corrects it
	r.tick()
	r.clock.advance(50 * time.Minute)
	_ = r.feed("x", event.Info, r.clock.wall) // a success on the corrected clock
	r.clock.advance(59 * time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 0)
	r.clock.advance(time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
}

func TestSuspendGivesGraceThenFires(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.clock.advance(30 * time.Minute)
	r.tick()
	r.clock.suspend(3 * time.Hour) // real time passes, the deadline with it
	r.tick()
	r.wantEvents("job", StatusDown, 0)
	r.clock.advance(ResumeGrace - time.Second)
	r.tick()
	r.wantEvents("job", StatusDown, 0)
	r.clock.advance(time.Second)
	r.tick()
	r.wantEvents("job", StatusDown, 1) // not hidden
}

func TestSuspendSuccessAfterResume(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.clock.suspend(3 * time.Hour)
	r.tick()
	r.clock.advance(time.Minute)
	_ = r.feed("x", event.Info, r.clock.wall) // the catch-up run reports
	r.clock.advance(ResumeGrace)
	r.tick()
	r.wantEvents("job", StatusDown, 0)
}

func TestRestartMidPeriodKeepsTheClock(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	r.clock.advance(10 * time.Minute)
	_ = r.feed("x", event.Info, r.clock.wall)
	r.clock.advance(40 * time.Minute)
	r.open(nil) // restart
	r.clock.advance(19 * time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 0)
	r.clock.advance(time.Minute)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
}

func TestRestartPastDeadlineAlarmsOnce(t *testing.T) {
	r := newRig(t, "heartbeat: job\n\tmatch-field exact:type=x\n\tperiod 1h\n", "")
	_ = r.feed("x", event.Info, r.clock.wall)
	// herald is down for three hours.
	r.clock.advance(3 * time.Hour)
	r.open(nil)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
	r.open(nil)
	r.tick()
	r.clock.advance(time.Hour)
	r.tick()
	r.wantEvents("job", StatusDown, 1)
}
