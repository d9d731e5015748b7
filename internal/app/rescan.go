package app

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// The spool heals itself (docs/limits.md). An entry whose ingest failed for
// a temporary reason (the queue's disk full, no file descriptors left)
// stays in the spool. The ingest loop then rescans on a timer that backs
// off from ingestRetryMin to ingestRetryMax, instead of waiting for
// unrelated mail or a restart; with nothing failing it still rescans every
// ingestRescan, which also picks up entries whose inotify event was lost.
// /healthz reports the spool as stuck once an entry has failed for longer
// than stuckAfter (the systemd watchdog does not: a restart cannot free a
// disk).
const (
	ingestRetryMin = time.Second
	ingestRetryMax = time.Minute
	ingestRescan   = time.Minute
	stuckAfter     = 10 * time.Minute
)

// healer is the App's record of spool entries that keep failing.
type healer struct {
	policy   rescanPolicy // tests shorten it
	lastCare time.Time    // last spool upkeep (diskcare.go), ingest loop only

	mu           sync.Mutex
	failingSince map[string]time.Time // spool ID → first failure
	stuck        stuckState
}

// rescanPolicy is the timing of the ingest loop's rescans.
type rescanPolicy struct {
	retryMin, retryMax, idle, stuckAfter time.Duration
}

func defaultRescan() rescanPolicy {
	return rescanPolicy{retryMin: ingestRetryMin, retryMax: ingestRetryMax, idle: ingestRescan, stuckAfter: stuckAfter}
}

// next returns the retry delay after a pass: when it left failed entries,
// the previous delay doubled (from retryMin, capped at retryMax); after a
// clean pass 0, a reset (the loop then waits the idle interval). One loop
// retries, so there is no herd to spread with jitter.
func (p rescanPolicy) next(prev time.Duration, failed bool) time.Duration {
	if !failed {
		return 0
	}
	return min(max(prev*2, p.retryMin), p.retryMax)
}

// stuckState is what the last ingest pass left behind.
type stuckState struct {
	count   int
	since   time.Time // when the oldest of them first failed
	lastErr string
}

// noteFailures records the entries the last pass could not process: first
// failure times are kept for entries that failed before, so an entry that
// keeps failing ages.
func (a *App) noteFailures(failed map[string]error, now time.Time) {
	a.heal.mu.Lock()
	defer a.heal.mu.Unlock()
	first := make(map[string]time.Time, len(failed))
	var st stuckState
	for id, err := range failed {
		t, ok := a.heal.failingSince[id]
		if !ok {
			t = now
		}
		first[id] = t
		if st.count == 0 || t.Before(st.since) {
			st.since, st.lastErr = t, err.Error()
		}
		st.count++
	}
	a.heal.failingSince = first
	a.heal.stuck = st
}

// health is /healthz: the loops turn (Healthy) and no spool entry has been
// failing for longer than the bound.
func (a *App) health() error {
	if !a.Healthy() {
		return errors.New("the ingest or delivery loop is stuck")
	}
	a.heal.mu.Lock()
	st := a.heal.stuck
	a.heal.mu.Unlock()
	if st.count > 0 {
		if d := a.now().Sub(st.since); d > a.heal.policy.stuckAfter {
			return fmt.Errorf("%d spool entries stuck for %s; last error: %s", st.count, d.Truncate(time.Second), st.lastErr)
		}
	}
	return nil
}
