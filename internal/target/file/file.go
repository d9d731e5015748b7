// Package file holds the `file` target: it appends each event as one line of
// JSON (the event form of docs/interfaces.md §2) to a file, such as STATE/events.jsonl of the
// embedded default. Writers take flock(LOCK_EX) for each append, so several
// herald processes, and anything else that honours flock, never interleave
// lines; every append is fsynced before Deliver returns.
package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/safeio"
	"herald/internal/target"
)

// Target appends events to one JSON lines file.
type Target struct {
	path string
}

// Both interfaces, checked at compile time: the queue relies on Delivered
// after a crash.
var (
	_ target.Target   = (*Target)(nil)
	_ target.Verifier = (*Target)(nil)
)

// New returns a target that appends to path. Nothing is opened until the
// first delivery: the file and its directory are created then.
func New(path string) *Target { return &Target{path: path} }

// Path returns the file the target appends to.
func (t *Target) Path() string { return t.path }

// Deliver appends ev as one JSON line and fsyncs the file.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	// event.JSONLine leaves <, > and & readable (json.Marshal would write
	// \u003c...), as people read this file.
	line, err := event.JSONLine(ev)
	if err != nil {
		return target.Permanent(fmt.Errorf("file: encode event: %w", err))
	}

	f, err := openAppend(t.path)
	if err != nil {
		return target.Temporary(fmt.Errorf("file: %w", err), 0)
	}
	defer f.Close() // closing also drops the flock; a close error after fsync loses nothing
	if err := lock(ctx, f, unix.LOCK_EX); err != nil {
		return target.Temporary(fmt.Errorf("file: lock %s: %w", t.path, err), 0)
	}
	if err := appendLine(f, line); err != nil {
		return target.Temporary(fmt.Errorf("file: append to %s: %w", t.path, err), 0)
	}
	return nil
}

// openAppend opens path for appending (read-write, so the last byte can be
// checked), creating it (0640) and its directory
// (0750) when missing. A new file's directory entry is made durable before
// anything is written to it, so that failure cannot come after an event was
// appended (and so cannot cause a second copy on retry).
func openAppend(path string) (*os.File, error) {
	if err := safeio.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	return safeio.OpenAppend(path, os.O_RDWR, 0o640)
}

// appendLine writes line at the end of the locked file f. A previous writer
// that died mid-line left no final '\n': one is written first so that the
// torn line stays alone and the new one parses. If the write or the fsync
// fails, the file is cut back to where it was.
func appendLine(f *os.File, line []byte) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			return fmt.Errorf("read last byte: %w", err)
		}
		if last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		// Cut back whatever part went in, so that the retry does not leave a
		// torn line or a second copy behind.
		if terr := f.Truncate(size); terr != nil {
			return fmt.Errorf("%w (and truncating back failed: %v)", err, terr)
		}
		if serr := f.Sync(); serr != nil {
			return fmt.Errorf("%w (and fsync after truncating failed: %v)", err, serr)
		}
		return err
	}
	return nil
}

// lock takes flock(how) on f, polling so that ctx can end the wait: a blocked
// flock(2) cannot be interrupted.
func lock(ctx context.Context, f *os.File, how int) error {
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("still locked by another writer: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// Delivered reports whether the file holds a line for ev.ID. It streams the
// whole file, so it is meant for crash recovery only.
func (t *Target) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("file: %w", err)
	}
	defer f.Close()
	// A shared lock waits out a writer that is mid-append.
	if err := lock(ctx, f, unix.LOCK_SH); err != nil {
		return false, fmt.Errorf("file: lock %s: %w", t.path, err)
	}
	return containsID(f, ev.ID)
}

// containsID scans JSON lines for an object whose "id" is id. Lines that do
// not mention the quoted id are skipped without parsing; a torn line does not
// parse and so does not count.
func containsID(r io.Reader, id string) (bool, error) {
	quoted, err := json.Marshal(id)
	if err != nil {
		return false, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && bytes.Contains(line, quoted) {
			complete := line[len(line)-1] == '\n'
			var v struct {
				ID string `json:"id"`
			}
			if complete && json.Unmarshal(line, &v) == nil && v.ID == id {
				return true, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// IgnoresMail tells the delivery queue that this target never reads the raw
// mail (target.MailBlind).
func (t *Target) IgnoresMail() bool { return true }

// IsLocal tells the delivery queue that this target delivers on this
// machine (target.Local).
func (t *Target) IsLocal() bool { return true }
