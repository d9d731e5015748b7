package noise

// The noise state lives in STATE/noise, one file per fact, each written
// with safeio (temp file, fsync, rename, directory fsync) before the
// decision it records takes effect:
//
//	dedup/KEY.json        one dedup window of one (rule, target,
//	                      fingerprint): the first event, its end, the IDs
//	                      counted so far
//	held/EVENT.TARGET.json  one held delivery (quiet hours or digest): the
//	                      event, its raw mail, the rule, when it is released
//	released/GROUP.json   a release in progress: the held deliveries it
//	                      took (so a crash halfway does not deliver the
//	                      rest a second time, on their own)
//
// Files whose name starts with safeio.TempPrefix are writes a crash
// interrupted; they are removed when the state is opened. Unreadable files
// are moved to quarantine/ with a log line, never deleted.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"herald/internal/event"
	"herald/internal/safeio"
)

const (
	dedupDir      = "dedup"
	heldDir       = "held"
	releasedDir   = "released"
	quarantineDir = "quarantine"
	fileMode      = 0o600
	dirMode       = 0o700
)

// maxCountedIDs bounds the event IDs a dedup window remembers (they make
// a repeated ingest of one spool entry count once; the window file is
// rewritten for every repeat, so it must stay small). Past it only the
// count grows: a flood costs constant space per window, and an entry
// processed twice after a crash may then be counted twice — never
// delivered twice.
const maxCountedIDs = 512

// fingerprint is what makes two events "the same" for dedup-window.
type fingerprint struct {
	Type     string         `json:"type"`
	Hostname string         `json:"hostname"`
	Severity event.Severity `json:"severity"`
	Title    string         `json:"title"`
}

func fingerprintOf(ev *event.Event) fingerprint {
	return fingerprint{Type: ev.Type(), Hostname: ev.Fields[event.FieldHostname], Severity: ev.Severity, Title: ev.Title}
}

// window is one dedup window on disk.
type window struct {
	Rule    string       `json:"rule"`
	Target  string       `json:"target"`
	FP      fingerprint  `json:"fingerprint"`
	First   *event.Event `json:"first"`
	Start   time.Time    `json:"start"`
	End     time.Time    `json:"end"`
	Count   int          `json:"count"`   // events held back (not the first)
	Counted []string     `json:"counted"` // their IDs, up to maxCountedIDs
	Last    time.Time    `json:"last,omitzero"`
}

func (w *window) key() string { return dedupKey(w.Rule, w.Target, w.FP) }

func dedupKey(rule, target string, fp fingerprint) string {
	b, _ := json.Marshal(fp)
	return hashID("d", rule, target, string(b))
}

// Kinds of held deliveries.
const (
	KindQuiet  = "quiet-hours"
	KindDigest = "digest"
)

// held is one held delivery on disk.
type held struct {
	Kind    string       `json:"kind"`
	Rule    string       `json:"rule"`
	Target  string       `json:"target"`
	Release time.Time    `json:"release"`
	Event   *event.Event `json:"event"`
	Mail    []byte       `json:"mail,omitempty"`
	From    string       `json:"mail-from,omitempty"`
	Rcpts   []string     `json:"mail-recipients,omitempty"`
}

func heldName(eventID, target string) string { return eventID + "." + target + ".json" }

// group is the key of the held deliveries released together: one digest
// per (kind, rule, target, release time).
func (h *held) group() string {
	return hashID("g", h.Kind, h.Rule, h.Target, h.Release.UTC().Format(time.RFC3339Nano))
}

// release is a release in progress on disk.
type release struct {
	Group   string   `json:"group"`
	Members []string `json:"members"` // held file names
}

// hashID makes a stable event ID from its parts: an output event (summary,
// digest) computed twice after a crash gets the same ID, and the queue's
// idempotent Enqueue then delivers it once.
func hashID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "noise-" + prefix + "-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// store reads and writes the state directory.
type store struct {
	dir string
}

func (s store) path(sub, name string) string { return filepath.Join(s.dir, sub, name) }

func (s store) mkdirs() error {
	for _, d := range []string{dedupDir, heldDir, releasedDir} {
		if err := safeio.MkdirAll(filepath.Join(s.dir, d), dirMode); err != nil {
			return err
		}
	}
	return nil
}

func (s store) write(sub, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return safeio.WriteFile(s.path(sub, name), b, fileMode)
}

// remove deletes files of one directory and makes that durable.
func (s store) remove(sub string, names ...string) error {
	var errs []error
	for _, n := range names {
		if err := os.Remove(s.path(sub, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := safeio.SyncDir(filepath.Join(s.dir, sub)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// scan reads every committed file of sub into fn; temporary files are
// removed (when clean) and unreadable ones passed to bad.
func (s store) scan(sub string, clean bool, fn func(name string, data []byte) error, bad func(name string, err error)) error {
	des, err := os.ReadDir(filepath.Join(s.dir, sub))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() {
			continue
		}
		if strings.HasPrefix(name, safeio.TempPrefix) {
			if clean {
				_ = os.Remove(s.path(sub, name))
			}
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			bad(name, errors.New("unexpected file"))
			continue
		}
		data, err := os.ReadFile(s.path(sub, name))
		if err != nil {
			bad(name, err)
			continue
		}
		if err := fn(name, data); err != nil {
			bad(name, err)
		}
	}
	return nil
}

// quarantine moves an unreadable file aside.
func (s store) quarantine(sub, name string) error {
	if _, err := safeio.MoveAside(s.path(sub, name), filepath.Join(s.dir, quarantineDir), sub+"-"+name, dirMode); err != nil {
		return fmt.Errorf("quarantine %s: %w", name, err)
	}
	return nil
}
