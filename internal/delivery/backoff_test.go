package delivery

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffCurve(t *testing.T) {
	noJitter := Backoff{Initial: 30 * time.Second, Max: time.Hour, Factor: 2}
	half := func() float64 { return 0.5 } // the middle of the jitter range: no change
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{"first", noJitter, 1, 30 * time.Second},
		{"second", noJitter, 2, time.Minute},
		{"third", noJitter, 3, 2 * time.Minute},
		{"seventh", noJitter, 7, 32 * time.Minute},
		{"capped", noJitter, 8, time.Hour},
		{"far beyond, no overflow", noJitter, 100000, time.Hour},
		{"attempt 0 is the first", noJitter, 0, 30 * time.Second},
		// maddy truncates the factor to an integer: 1.5 would give 30 s forever.
		{"fractional factor 2", Backoff{Initial: 30 * time.Second, Max: time.Hour, Factor: 1.5}, 2, 45 * time.Second},
		{"fractional factor 3", Backoff{Initial: 30 * time.Second, Max: time.Hour, Factor: 1.5}, 3, 67500 * time.Millisecond},
		{"floor of one second", Backoff{Initial: 10 * time.Millisecond, Max: time.Hour, Factor: 2}, 1, time.Second},
		{"default, mid jitter", DefaultBackoff(), 1, 30 * time.Second},
		{"default, mid jitter, capped", DefaultBackoff(), 20, time.Hour},
		{"zero fields take defaults", Backoff{}, 2, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.Delay(tc.attempt, half); got != tc.want {
				t.Errorf("Delay(%d) = %v, want %v", tc.attempt, got, tc.want)
			}
		})
	}
}

func TestBackoffFirstRetriesDiffer(t *testing.T) {
	for _, b := range []Backoff{DefaultBackoff(), {Initial: 30 * time.Second, Max: time.Hour, Factor: 1.5}} {
		seen := map[time.Duration]bool{}
		for a := 1; a <= 5; a++ {
			d := b.Delay(a, func() float64 { return 0.5 })
			if seen[d] {
				t.Errorf("%+v: attempt %d repeats delay %v", b, a, d)
			}
			seen[d] = true
		}
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	b := DefaultBackoff()
	if got := b.Delay(1, func() float64 { return 0 }); got != 24*time.Second {
		t.Errorf("lowest jitter: %v, want 24s", got)
	}
	if got := b.Delay(20, func() float64 { return 0.9999999999 }); got < 71*time.Minute || got > 72*time.Minute {
		t.Errorf("highest jitter on the cap: %v, want just under 72m", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	distinct := map[time.Duration]bool{}
	for i := range 2000 {
		a := 1 + i%10
		base := Backoff{Initial: b.Initial, Max: b.Max, Factor: b.Factor}.Delay(a, nil)
		d := b.Delay(a, r.Float64)
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		if d < lo || d > hi {
			t.Fatalf("attempt %d: %v outside [%v, %v]", a, d, lo, hi)
		}
		if a == 1 {
			distinct[d] = true
		}
	}
	if len(distinct) < 100 {
		t.Errorf("jitter spreads the first retry over only %d values", len(distinct))
	}
}
