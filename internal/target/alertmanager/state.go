package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/safeio"
)

// The heartbeat state of one alertmanager target lives in its own
// directory (Options.StateDir):
//
//	lock             flock'ed around every read-modify-write
//	heartbeats.json  every heartbeat alert this target has fired, by
//	                 hostname/monitor: its labels and annotations, whether
//	                 it is firing or resolved, and the event that said so
//
// It is what makes a down heartbeat stay firing across restarts: the
// re-send loop (Resend) posts every firing alert again, and the matching up
// event resolves the alert with the labels stored here. The file is
// written whole with safeio before Deliver reports success. Resolved
// entries are kept for pruneAfter, long enough for any queued, older down
// event of the same monitor to be recognised as stale; an unreadable file
// is moved aside with a log line, never silently dropped.
//
// The lock is an flock on a file of its own, so that the old and the new
// Target of a configuration reload, which share the directory, never
// interleave their updates.
const (
	stateFile  = "heartbeats.json"
	lockFile   = "lock"
	pruneAfter = 8 * 24 * time.Hour
	stateMax   = 16 << 20 // a state file larger than this is not ours
)

// The states of a heartbeat alert.
const (
	stateFiring   = "firing"
	stateResolved = "resolved"
)

// hbAlert is one heartbeat alert in the state file.
type hbAlert struct {
	Alert  Alert  `json:"alert"`
	Status string `json:"status"` // stateFiring or stateResolved
	// EventID and EventTime are the down or up event that set Status.
	EventID   string    `json:"event_id"`
	EventTime time.Time `json:"event_time"`
	// Changed is when Status was recorded (for pruning).
	Changed time.Time `json:"changed"`
}

// hbState is the JSON form of heartbeats.json.
type hbState struct {
	Version int                 `json:"version"`
	Alerts  map[string]*hbAlert `json:"alerts"`
}

// store reads and updates one target's heartbeat state.
type store struct {
	dir string
	log *slog.Logger
}

// heartbeatKey names a heartbeat alert in the state.
func heartbeatKey(hostname, monitor string) string { return hostname + "/" + monitor }

// parseState decodes a state file. It is the one parser of the file (and
// fuzzed): anything it refuses is moved aside by load.
func parseState(b []byte) (*hbState, error) {
	st := &hbState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, err
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("unknown state version %d", st.Version)
	}
	if st.Alerts == nil {
		st.Alerts = map[string]*hbAlert{}
	}
	for k, a := range st.Alerts {
		if a == nil || len(a.Alert.Labels) == 0 || (a.Status != stateFiring && a.Status != stateResolved) {
			return nil, fmt.Errorf("entry %q is incomplete", k)
		}
	}
	return st, nil
}

// load reads the state; the caller holds the lock.
func (s *store) load() (*hbState, error) {
	path := filepath.Join(s.dir, stateFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &hbState{Version: 1, Alerts: map[string]*hbAlert{}}, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := readAllLimited(f, stateMax)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	st, perr := parseState(b)
	if perr == nil {
		return st, nil
	}
	aside, err := safeio.MoveAside(path, filepath.Dir(path), fmt.Sprintf("%s.unreadable-%d", filepath.Base(path), time.Now().UnixNano()), 0o700)
	if err != nil {
		return nil, fmt.Errorf("heartbeat state %s is unreadable (%v) and cannot be moved aside: %w", path, perr, err)
	}
	s.log.Error("heartbeat state unreadable; moved aside, firing heartbeat alerts are forgotten",
		"file", path, "moved_to", aside, "err", perr)
	return &hbState{Version: 1, Alerts: map[string]*hbAlert{}}, nil
}

func readAllLimited(f *os.File, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than heartbeat state can be", f.Name(), fi.Size())
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && n != len(b) {
		return nil, err
	}
	return b[:n], nil
}

// lock takes the state's flock; the returned function releases it.
func (s *store) lock() (func(), error) {
	if err := safeio.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { _ = f.Close() }, nil // closing releases the flock
}

// view runs fn on the state under the lock without writing it.
func (s *store) view(fn func(st *hbState)) error {
	// update writes nothing when fn reports no change, and only a write
	// reads the time.
	return s.update(time.Time{}, func(st *hbState) bool { fn(st); return false })
}

// update runs fn on the state under the lock and writes the state durably
// when fn reports a change. Resolved entries older than pruneAfter are
// dropped on every write.
func (s *store) update(now time.Time, fn func(st *hbState) bool) error {
	unlock, err := s.lock()
	if err != nil {
		return fmt.Errorf("heartbeat state: %w", err)
	}
	defer unlock()
	st, err := s.load()
	if err != nil {
		return fmt.Errorf("heartbeat state: %w", err)
	}
	if !fn(st) {
		return nil
	}
	for k, a := range st.Alerts {
		if a.Status == stateResolved && now.Sub(a.Changed) > pruneAfter {
			delete(st.Alerts, k)
		}
	}
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("heartbeat state: %w", err)
	}
	if err := safeio.WriteFile(filepath.Join(s.dir, stateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("heartbeat state: %w", err)
	}
	return nil
}
