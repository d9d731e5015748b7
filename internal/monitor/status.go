package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"herald/internal/config"
)

// States a monitor is shown in.
const (
	StateNew    = "new"    // watching, no success (heartbeat) or check (usage) yet
	StateUp     = "up"     // fine
	StateDown   = "down"   // an outage is reported (usage: above the threshold)
	StatePaused = "paused" // paused by the admin, or disabled in the config
)

// ErrUnknown reports a monitor name the configuration does not have.
var ErrUnknown = errors.New("no such monitor")

// Status is one monitor as `herald monitors`, /api/v1/monitors and the
// metrics show it.
type Status struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // heartbeat or usage
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"` // of a heartbeat outage: missed or failed
	Comment string `json:"comment,omitempty"`
	// Disabled is set when the config disables it (state paused).
	Disabled bool `json:"disabled,omitempty"`

	LastSuccess  *time.Time `json:"last-success,omitempty"`
	LastFailure  *time.Time `json:"last-failure,omitempty"`
	Failures     int        `json:"failures,omitempty"` // in a row
	NextDeadline *time.Time `json:"next-deadline,omitempty"`
	DownSince    *time.Time `json:"down-since,omitempty"`

	Path        string     `json:"path,omitempty"`
	Threshold   float64    `json:"threshold,omitempty"`
	UsedPercent *float64   `json:"used-percent,omitempty"`
	LastCheck   *time.Time `json:"last-check,omitempty"`
	Error       string     `json:"error,omitempty"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// List returns every configured monitor, heartbeats then usage watches,
// config order.
func (e *Engine) List() []Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Status, 0, len(e.cfg.Heartbeats)+len(e.cfg.Usage))
	for _, h := range e.cfg.Heartbeats {
		s := e.st.Heartbeats[h.Name]
		if s == nil {
			// Not in the state yet (its first write failed, or the daemon
			// has not run with it): watching starts with the next write.
			s = &hbState{}
		}
		out = append(out, e.heartbeatStatus(h, s))
	}
	for _, u := range e.cfg.Usage {
		s := e.st.Usage[u.Name]
		if s == nil {
			s = &usageState{}
		}
		st := Status{Name: u.Name, Kind: "usage", Comment: u.Comment, Disabled: u.Disable, Path: u.Path,
			Threshold: u.Threshold, LastCheck: tp(s.Checked), Error: s.Error}
		switch {
		case u.Disable || s.Paused:
			st.State = StatePaused
		case s.Checked.IsZero():
			st.State = StateNew
		case s.Above:
			st.State = StateDown
		default:
			st.State = StateUp
		}
		if !s.Checked.IsZero() {
			p := s.UsedPercent
			st.UsedPercent = &p
		}
		out = append(out, st)
	}
	return out
}

func (e *Engine) heartbeatStatus(h *config.Heartbeat, s *hbState) Status {
	st := Status{Name: h.Name, Kind: "heartbeat", Comment: h.Comment, Disabled: h.Disable,
		LastSuccess: tp(s.LastSuccess), LastFailure: tp(s.LastFailure), Failures: s.Failures}
	switch {
	case h.Disable || s.Paused:
		st.State = StatePaused
	case s.Down:
		st.State, st.Reason, st.DownSince = StateDown, s.Reason, tp(s.DownSince)
		if h.Repeat > 0 {
			st.NextDeadline = tp(s.LastAlert.Add(h.Repeat))
		}
	default:
		st.State = StateUp
		if s.LastSuccess.IsZero() {
			st.State = StateNew
		}
		if s.Anchor.IsZero() {
			break // no clock yet
		}
		if dl, ok := e.deadline(h, s, h.AlertAfterMissed); ok {
			if r, ok := e.resumed[h.Name]; ok && r.After(dl) {
				dl = r
			}
			st.NextDeadline = tp(dl)
		}
	}
	return st
}

// Pause stops judging a monitor (no alarms, no events counted) until
// Resume. The pause is durable.
func (e *Engine) Pause(name string) error { return e.setPaused(name, true) }

// Resume judges a paused monitor again; a heartbeat's clock starts afresh
// (the time it was paused is not a miss).
func (e *Engine) Resume(name string) error { return e.setPaused(name, false) }

func (e *Engine) setPaused(name string, paused bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	found := false
	err := e.update(func(st *fileState) bool {
		if s := st.Heartbeats[name]; s != nil && e.cfg.Heartbeat(name) != nil {
			found = true
			if s.Paused == paused {
				return false
			}
			s.Paused = paused
			if !paused {
				s.Anchor, s.Failures = now, 0
			}
			return true
		}
		for _, u := range e.cfg.Usage {
			if s := st.Usage[name]; u.Name == name && s != nil {
				found = true
				if s.Paused == paused {
					return false
				}
				s.Paused = paused
				return true
			}
		}
		return false
	})
	if !found {
		return fmt.Errorf("%w: %s", ErrUnknown, name)
	}
	if err == nil {
		delete(e.resumed, name)
		if paused {
			e.log.Info("monitor paused", "monitor", name)
		} else {
			e.log.Info("monitor resumed", "monitor", name)
		}
		e.wake()
	}
	return err
}

// ReadStatus lists the monitors of cfg as the state file in dir last
// recorded them, for `herald monitors` while the daemon is not running. It
// writes nothing; deadlines are shown in loc (nil: time.Local).
func ReadStatus(dir string, cfg config.Monitors, loc *time.Location) ([]Status, error) {
	st := newFileState()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
		}
	}
	if loc == nil {
		loc = time.Local
	}
	e := &Engine{cfg: cfg, st: st, loc: loc, resumed: map[string]time.Time{}}
	return e.List(), nil
}
