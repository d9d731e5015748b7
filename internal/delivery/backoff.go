package delivery

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff is the retry schedule after temporary failures: the n-th retry
// waits Initial·Factor^(n-1), capped at Max, then spread by ±Jitter (a
// fraction) so that deliveries that failed together do not retry together.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
	Jitter  float64
}

// DefaultBackoff returns the default schedule: 30 s, 1 min, 2 min, 4 min …
// capped at 1 h, each ±20 %.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 30 * time.Second, Max: time.Hour, Factor: 2, Jitter: 0.2}
}

// minDelay is the floor of every delay: a retry storm against a broken
// target helps nobody.
const minDelay = time.Second

// withDefaults fills the zero (or invalid) fields from DefaultBackoff. A
// zero Jitter stays zero: no jitter. Options with a zero Backoff get
// DefaultBackoff as a whole.
func (b Backoff) withDefaults() Backoff {
	def := DefaultBackoff()
	if b.Initial <= 0 {
		b.Initial = def.Initial
	}
	if b.Max <= 0 {
		b.Max = def.Max
	}
	if b.Factor < 1 {
		b.Factor = def.Factor
	}
	if b.Jitter < 0 || b.Jitter >= 1 {
		b.Jitter = def.Jitter
	}
	return b
}

// Delay returns how long to wait after the attempt-th failed attempt
// (1 for the first failure). rnd returns a number in [0, 1); nil means
// math/rand/v2. The curve is computed in float64 (truncating the factor to
// an integer, as maddy does, makes the first retries all equal), clamped to
// Max, then jittered, and never below one second. Zero fields take the
// defaults, except Jitter: 0 means no jitter.
func (b Backoff) Delay(attempt int, rnd func() float64) time.Duration {
	b = b.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	d := float64(b.Initial) * math.Pow(b.Factor, float64(attempt-1))
	if math.IsInf(d, 0) || math.IsNaN(d) || d > float64(b.Max) {
		d = float64(b.Max)
	}
	d *= 1 + b.Jitter*(2*rnd()-1)
	if d < float64(minDelay) {
		return minDelay
	}
	return time.Duration(d)
}
