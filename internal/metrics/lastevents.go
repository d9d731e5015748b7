package metrics

import (
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"time"

	"herald/internal/safeio"
)

// LastEventsFile keeps herald_last_event_timestamp_seconds across restarts:
// a host that rebooted must still be found silent when its nightly job
// stopped reporting before the reboot. It is metrics, not mail: written when
// it changed (Save) and at shutdown; an unreadable file is reported by Load
// and replaced by the next Save.
type LastEventsFile struct {
	Path  string
	saved map[string]time.Time
}

type lastEventsJSON struct {
	Version    int                  `json:"version"`
	LastEvents map[string]time.Time `json:"last_events"`
}

// Load seeds m's last-event times from the file; a missing file is none.
func (f *LastEventsFile) Load(m *Metrics) error {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var v lastEventsJSON
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		return err
	}
	m.RestoreLastEvents(v.LastEvents)
	f.saved = m.LastEvents()
	return nil
}

// Saved records m's last-event times as what the file holds, as when they
// were just restored from it: Save writes only what changes after.
func (f *LastEventsFile) Saved(m *Metrics) { f.saved = m.LastEvents() }

// Save writes m's last-event times durably when they changed since the
// last Load or Save.
func (f *LastEventsFile) Save(m *Metrics) error {
	cur := m.LastEvents()
	if maps.EqualFunc(cur, f.saved, time.Time.Equal) {
		return nil
	}
	b, err := json.Marshal(lastEventsJSON{Version: 1, LastEvents: cur})
	if err == nil {
		err = safeio.WriteFile(f.Path, b, 0o600)
	}
	if err != nil {
		return err
	}
	f.saved = cur
	return nil
}
