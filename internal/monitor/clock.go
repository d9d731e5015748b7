package monitor

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock is what the engine reads time from (docs/monitors.md, "Clocks"):
//
//   - Now is the wall clock: deadlines are wall times, because events
//     carry wall times and a deadline must survive a restart;
//   - Boot is real elapsed time since an arbitrary origin, counting time
//     the machine was suspended (CLOCK_BOOTTIME): it tells a step of the
//     wall clock (the wall moved, real time did not) from time passing;
//   - Mono is elapsed time that stops while the machine is suspended
//     (CLOCK_MONOTONIC, Go's own monotonic reading): Boot minus Mono is
//     how long the machine slept.
type Clock interface {
	Now() time.Time
	Boot() time.Duration
	Mono() time.Duration
}

// SystemClock is the real clock.
type SystemClock struct{ origin time.Time }

// NewSystemClock returns the machine's clocks.
func NewSystemClock() *SystemClock { return &SystemClock{origin: time.Now()} }

// Now returns the wall time.
func (c *SystemClock) Now() time.Time { return time.Now() }

// Mono returns the monotonic time since the clock was made.
func (c *SystemClock) Mono() time.Duration { return time.Since(c.origin) }

// Boot returns CLOCK_BOOTTIME; should the call fail (it does not on Linux
// since 2.6.39), it falls back to Mono, which only loses suspend detection.
func (c *SystemClock) Boot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return c.Mono()
	}
	return time.Duration(ts.Nano())
}
