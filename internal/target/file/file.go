// Package file holds the `file` target: it appends each event as one line of
// JSON (the event form of docs/interfaces.md §2) to a file, such as STATE/events.jsonl of the
// embedded default. Writers take flock(LOCK_EX) for each append, so several
// herald processes, and anything else that honours flock, never interleave
// lines; every append is fsynced before Deliver returns. A batch of events
// (DeliverBatch) is appended under one flock and fsynced once.
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

	// wrap, when set, wraps the file's writer and sync replaces the
	// fsync of the appended lines; tests use them to count fsyncs and to
	// make a write or the fsync fail.
	wrap func(io.Writer) io.Writer
	sync func(*os.File) error
}

// Both interfaces, checked at compile time: the queue relies on Delivered
// after a crash.
var (
	_ target.Target   = (*Target)(nil)
	_ target.Verifier = (*Target)(nil)
	_ target.Batcher  = (*Target)(nil)
)

// New returns a target that appends to path. Nothing is opened until the
// first delivery: the file and its directory are created then.
func New(path string) *Target { return &Target{path: path} }

// Path returns the file the target appends to.
func (t *Target) Path() string { return t.path }

// Deliver appends ev as one JSON line and fsyncs the file: a batch of one.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	return t.DeliverBatch(ctx, []*event.Event{ev})[0]
}

// DeliverBatch appends the events as JSON lines, in order, under one flock,
// and makes them durable with one fsync (target.Batcher). An event that
// cannot be encoded fails alone (permanently); if the append or the fsync
// fails, the file is cut back to where it was and every event that was to
// be written gets the error.
func (t *Target) DeliverBatch(ctx context.Context, evs []*event.Event) []error {
	errs := make([]error, len(evs))
	var (
		todo  []int    // the events that encoded
		batch [][]byte // their lines
	)
	for i, ev := range evs {
		// event.JSONLine leaves <, > and & readable (json.Marshal would
		// write \u003c...), as people read this file.
		line, err := event.JSONLine(ev)
		if err != nil {
			errs[i] = target.Permanent(fmt.Errorf("file: encode event: %w", err))
			continue
		}
		todo = append(todo, i)
		batch = append(batch, line)
	}
	if len(todo) == 0 {
		return errs
	}
	fail := func(err error) []error {
		for _, i := range todo {
			errs[i] = err
		}
		return errs
	}

	f, err := openAppend(t.path)
	if err != nil {
		return fail(target.Temporary(fmt.Errorf("file: %w", err), 0))
	}
	defer f.Close() // closing also drops the flock; a close error after fsync loses nothing
	if err := lock(ctx, f, unix.LOCK_EX); err != nil {
		return fail(target.Temporary(fmt.Errorf("file: lock %s: %w", t.path, err), 0))
	}
	if err := t.appendLines(f, batch); err != nil {
		return fail(target.Temporary(fmt.Errorf("file: append to %s: %w", t.path, err), 0))
	}
	return errs
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

// appendLines writes lines at the end of the locked file f and fsyncs it
// once. A previous writer that died mid-line left no final '\n': one is
// written first so that the torn line stays alone and the new ones parse.
// If a write or the fsync fails, the file is cut back to where it was.
func (t *Target) appendLines(f *os.File, lines [][]byte) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var w io.Writer = f
	if t.wrap != nil {
		w = t.wrap(w)
	}
	// Lines go out through a buffer, so a batch costs few writes and never
	// more memory than the buffer and its longest line.
	bw := bufio.NewWriterSize(w, 64<<10)
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			return fmt.Errorf("read last byte: %w", err)
		}
		if last[0] != '\n' {
			err = bw.WriteByte('\n')
		}
	}
	for _, line := range lines {
		if err != nil {
			break
		}
		_, err = bw.Write(line)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = t.syncFile(f)
	}
	if err != nil {
		// Cut back whatever part went in, so that the retry does not leave a
		// torn line or a second copy behind.
		return safeio.CutBack(f, size, err)
	}
	return nil
}

// syncFile fsyncs f, or calls the test's hook instead.
func (t *Target) syncFile(f *os.File) error {
	if t.sync != nil {
		return t.sync(f)
	}
	return f.Sync()
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
