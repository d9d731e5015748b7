package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"herald/internal/event"
	"herald/internal/safeio"
)

// stateFile is the one file holding every monitor's state, inside
// Options.Dir. It is rewritten atomically (internal/safeio) on every
// change, before anything is reported to anyone.
const stateFile = "state.json"

// recentIDs is how many fed event IDs a heartbeat remembers, so that an
// event processed twice (a crash between feeding and leaving the spool)
// counts once.
const recentIDs = 32

// hbState is the durable state of one heartbeat.
type hbState struct {
	// Since is when herald started watching it (first loaded).
	Since time.Time `json:"since"`
	// Anchor is what deadlines count from: the later of Since and the last
	// success, moved along with wall-clock steps and with resume.
	Anchor      time.Time `json:"anchor"`
	LastSuccess time.Time `json:"last-success,omitzero"`
	LastFailure time.Time `json:"last-failure,omitzero"`
	// Failures counts failures in a row since the last success.
	Failures int    `json:"failures"`
	Down     bool   `json:"down"`
	Reason   string `json:"reason,omitempty"` // of the outage: missed|failed
	// DownSince is when the outage was reported; LastAlert when a down
	// event was last raised (repeat counts from it).
	DownSince time.Time `json:"down-since,omitzero"`
	LastAlert time.Time `json:"last-alert,omitzero"`
	Paused    bool      `json:"paused,omitempty"`
	// Disabled mirrors the config's disable, so that enabling it again
	// restarts its clock like a resume.
	Disabled bool `json:"disabled,omitempty"`
	// Recent holds the IDs of the last events fed to it.
	Recent []string `json:"recent,omitempty"`
}

// usageState is the durable state of one usage watch.
type usageState struct {
	Above       bool      `json:"above"`
	UsedPercent float64   `json:"used-percent"`
	Checked     time.Time `json:"checked,omitzero"`
	Error       string    `json:"error,omitempty"`
	Paused      bool      `json:"paused,omitempty"`
}

// fileState is the content of the state file.
type fileState struct {
	Version    int                    `json:"version"`
	Heartbeats map[string]*hbState    `json:"heartbeats"`
	Usage      map[string]*usageState `json:"usage"`
	// Outbox holds raised events not yet known to be in the spool. An
	// event enters it in the same write as the state change that raised
	// it, and leaves it after the spool accepted it; on start-up what is
	// left is submitted again with the same event ID, which the delivery
	// queue deduplicates. That makes each event exactly-once across a
	// crash at any point.
	Outbox []*event.Event `json:"outbox,omitempty"`
}

func newFileState() *fileState {
	return &fileState{Version: 1, Heartbeats: map[string]*hbState{}, Usage: map[string]*usageState{}}
}

// loadState reads the state file; a missing file is an empty state. A
// corrupt file is moved aside (never silently dropped) and an empty state
// returned with the error for the log.
func loadState(dir string) (*fileState, error) {
	p := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return newFileState(), nil
	}
	if err != nil {
		return nil, err
	}
	st := newFileState()
	if err := json.Unmarshal(b, st); err != nil || st.Version != 1 {
		aside, rerr := safeio.MoveAside(p, dir, stateFile+".corrupt-"+time.Now().UTC().Format("20060102T150405"), 0o700)
		if rerr != nil {
			return nil, fmt.Errorf("state file %s unreadable (%v) and cannot be moved aside: %w", p, err, rerr)
		}
		if err == nil {
			err = fmt.Errorf("unknown version %d", st.Version)
		}
		return newFileState(), fmt.Errorf("state file unreadable (%v): moved to %s, starting afresh", err, aside)
	}
	if st.Heartbeats == nil {
		st.Heartbeats = map[string]*hbState{}
	}
	if st.Usage == nil {
		st.Usage = map[string]*usageState{}
	}
	return st, nil
}

// save writes the state durably.
func (st *fileState) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return err
	}
	return safeio.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}

// clone returns a deep copy, so that a failed write leaves the state in
// memory as it is on disk.
func (st *fileState) clone() *fileState {
	b, err := json.Marshal(st)
	if err != nil {
		panic("monitor: state does not marshal: " + err.Error())
	}
	c := newFileState()
	if err := json.Unmarshal(b, c); err != nil {
		panic("monitor: state does not round-trip: " + err.Error())
	}
	return c
}
