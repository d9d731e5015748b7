package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/safeio"
)

// Drop is the submitter's side of the spool: it writes entries into the
// maildrop directory and nothing else. The sendmail shim and `herald notify`
// use it, possibly as an unprivileged user through the setgid shim.
type Drop struct {
	dir string // STATE/spool/maildrop
}

// OpenDrop opens the maildrop of the spool under stateDir. It only checks
// that the directory exists; a missing spool is a temporary failure (the
// daemon's package may not be installed completely yet).
func OpenDrop(stateDir string) (*Drop, error) {
	return OpenDropDir(filepath.Join(stateDir, spoolDirName))
}

// OpenDropDir is OpenDrop for a spool at root instead of STATE/spool.
func OpenDropDir(root string) (*Drop, error) {
	dir := filepath.Join(root, maildropDirName)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, &spoolError{op: "open maildrop", err: err}
	}
	if !st.IsDir() {
		return nil, &spoolError{op: "open maildrop", err: &fs.PathError{Op: "open", Path: dir, Err: unix.ENOTDIR}}
	}
	return &Drop{dir: dir}, nil
}

// Dir returns the maildrop directory.
func (d *Drop) Dir() string { return d.dir }

// Submit writes one entry durably into the maildrop and returns its ID. It
// streams body to disk, failing with ErrTooLarge (and leaving nothing) when
// body holds more than maxSize bytes (0 means no limit). It returns only
// after the file and the directory entry are fsynced. A submission beyond
// the disk limits (disk.go) fails with an error wrapping ErrLowSpace or
// ErrUserLimit, both temporary.
func (d *Drop) Submit(env Envelope, body io.Reader, maxSize int64) (string, error) {
	// The disk limits (disk.go) before anything is written.
	if err := checkDrop(d.dir, os.Getuid()); err != nil {
		return "", err
	}
	return writeEntry(d.dir, 0o644, env, body, maxSize)
}

// Kick asks a running daemon to run its delivery queue now, by creating the
// marker file `kick` in the maildrop; the daemon's Watch notices it and
// Kicked consumes it. A marker already there (perhaps another user's, which
// the sticky directory would not let us replace) is a pending kick: success.
// The marker is a hint, not data, so it is not fsynced.
func (d *Drop) Kick() error {
	p := filepath.Join(d.dir, kickName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return &spoolError{op: "kick", err: err}
	}
	if err := f.Close(); err != nil {
		return &spoolError{op: "kick", err: err}
	}
	return nil
}

// limitReader passes body through, failing with ErrTooLarge once more than
// max bytes were read, and wrapping the body's own errors in BodyError so
// they are not mistaken for spool failures.
type limitReader struct {
	r   io.Reader
	max int64 // 0: unlimited
	n   int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.max > 0 && int64(len(p)) > l.max-l.n+1 {
		// Read at most one byte past the limit: enough to know it was
		// exceeded without buffering more.
		p = p[:l.max-l.n+1]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.max > 0 && l.n > l.max {
		return n, ErrTooLarge
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return n, &BodyError{Err: err}
	}
	return n, err
}

// lockFile takes an exclusive flock on f, so that recovery can tell this
// live writer from a dead one.
func lockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		lerr = unix.Flock(int(fd), unix.LOCK_EX)
	}); err != nil {
		return err
	}
	return lerr
}

// encodeHead returns the magic line and the envelope line, the latter
// ending in a body_size field to be filled in at sizeAt (withBodySize). The
// JSON is not HTML-escaped (an "&" stays one byte, not six), and an
// envelope line longer than the reader's limit is refused here rather than
// quarantined there.
func encodeHead(env *Envelope) (head []byte, sizeAt int64, err error) {
	var b bytes.Buffer
	b.WriteString(magic)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil { // Encode ends the line
		return nil, 0, err
	}
	head, sizeAt = withBodySize(b.Bytes())
	if len(head)-len(magic)-1 > maxEnvelopeLine {
		return nil, 0, ErrEnvelopeTooLarge
	}
	return head, sizeAt, nil
}

// writeEntry writes one entry into dir with the given file mode: magic,
// envelope line, then body, committed through safeio.
func writeEntry(dir string, perm os.FileMode, env Envelope, body io.Reader, maxSize int64) (string, error) {
	id, head, sizeAt, err := newEntry(&env)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(dir, id)
	t, err := safeio.Create(dest, perm)
	if err != nil {
		return "", &spoolError{op: "create entry", err: err}
	}
	defer t.Abort()
	if err := lockFile(t.File); err != nil {
		return "", &spoolError{op: "lock entry", err: err}
	}
	if _, err := t.Write(head); err != nil {
		return "", &spoolError{op: "write entry", err: err}
	}
	n, err := t.ReadFrom(&limitReader{r: body, max: maxSize})
	if err != nil {
		return "", bodyOrSpoolError(err)
	}
	if _, err := t.WriteAt(bodySize(n), sizeAt); err != nil {
		return "", &spoolError{op: "write entry", err: err}
	}
	if err := t.Commit(); err != nil {
		if err := commitFailed(dest, err); err != nil {
			return "", err
		}
	}
	return id, nil
}

// newEntry readies a new entry of env: checked, its receipt time set
// (when the submitter gave none), a new ID, and the head to write with the
// offset of its body size (encodeHead).
func newEntry(env *Envelope) (id string, head []byte, sizeAt int64, err error) {
	if err := env.validate(); err != nil {
		return "", nil, 0, err
	}
	now := time.Now()
	if env.Received.IsZero() {
		env.Received = now.UTC()
	}
	if head, sizeAt, err = encodeHead(env); err != nil {
		return "", nil, 0, err
	}
	return NewID(now), head, sizeAt, nil
}

// bodySize is the body_size digits for a body of n bytes, to write at the
// offset encodeHead returned.
func bodySize(n int64) []byte { return fmt.Appendf(nil, "%0*d", bodySizeDigits, n) }

// withBodySize adds the body_size field (bodySizeField) to the end of the
// envelope of head (magic line, envelope JSON object, "\n"), its digits all
// zero, and returns the new head and the offset of the digits, which the
// writer fills in once it knows the body's length.
func withBodySize(head []byte) ([]byte, int64) {
	end := len(head) - 2 // the envelope's closing brace
	out := make([]byte, 0, len(head)+len(bodySizeField)+bodySizeDigits+1)
	out = append(out, head[:end]...)
	out = append(out, bodySizeField...)
	at := int64(len(out))
	out = append(out, strings.Repeat("0", bodySizeDigits)...)
	out = append(out, '"')
	out = append(out, head[end:]...)
	return out, at
}

// commitFailed handles a failed safeio Commit. Before the rename nothing is
// left (safeio removed the temporary file). After the rename only the
// directory fsync failed: an unprivileged submitter cannot open the maildrop
// (no read permission) and falls back to syncfs(2); otherwise the entry is
// removed again, because nothing unacknowledged may remain for the daemon to
// deliver behind the caller's back (the caller will retry).
func commitFailed(dest string, err error) error {
	if _, serr := os.Lstat(dest); serr != nil {
		return &spoolError{op: "commit entry", err: err}
	}
	if errors.Is(err, fs.ErrPermission) {
		if ferr := syncFS(dest); ferr == nil {
			return nil
		}
	}
	if rerr := os.Remove(dest); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return &spoolError{op: "commit entry", err: errors.Join(err, rerr)}
	}
	return &spoolError{op: "commit entry", err: err}
}

// syncFS commits the file system holding path: the fallback for making a
// rename durable when its directory cannot be opened.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	rc, err := f.SyscallConn()
	if err == nil {
		var serr error
		err = rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) })
		if err == nil {
			err = serr
		}
	}
	cerr := f.Close()
	if err != nil {
		return err
	}
	return cerr
}

// List returns the committed entries of the spool under stateDir, oldest
// first, without changing anything: for `mailq`. Entries that cannot be
// parsed are skipped (the daemon quarantines them). Listing needs read
// permission on both spool directories (root or the herald user); otherwise
// the error satisfies errors.Is(err, fs.ErrPermission).
func List(stateDir string) ([]Entry, error) {
	return ListDir(filepath.Join(stateDir, spoolDirName))
}

// ListDir is List for a spool at root instead of STATE/spool.
func ListDir(root string) ([]Entry, error) {
	var all []Entry
	for _, d := range []struct {
		name  string
		owner bool
	}{{maildropDirName, true}, {incomingDirName, false}} {
		dir := filepath.Join(root, d.name)
		names, err := readNames(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && d.name == incomingDirName {
				continue // created by the daemon on its first start
			}
			return nil, err
		}
		uid := -1
		if !d.owner {
			if st, err := os.Stat(dir); err == nil {
				uid = ownerOf(st)
			}
		}
		for _, n := range names {
			if !ValidID(n) {
				continue
			}
			f, e, err := openEntry(filepath.Join(dir, n), n, d.owner, uid)
			if err != nil {
				if errors.Is(err, fs.ErrPermission) {
					return nil, err
				}
				continue
			}
			_ = f.Close() // read-only; nothing to lose
			all = append(all, e)
		}
	}
	sortEntries(all)
	return all, nil
}

// readNames lists the names in dir.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	cerr := f.Close()
	if err != nil {
		return nil, err
	}
	return names, cerr
}

// ownerOf returns the owner uid in st, or -1.
func ownerOf(st fs.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return -1
}

// sortEntries sorts entries oldest first (IDs sort by time).
func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID })
}
