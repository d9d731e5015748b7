package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/safeio"
)

// Disk protection (docs/limits.md).
//
//   - A free-space reserve, like Postfix's queue_minfree: a submission is
//     refused as a temporary failure (ErrLowSpace: shim exit 75, SMTP 452,
//     HTTP 503) while the spool's file system has less than MinFree bytes
//     available, so the queue can still move before the disk is full. A
//     submitter running as root needs only half the reserve, so that an
//     ordinary user filling the disk cannot silence root's mail first.
//   - A per-uid limit: a local user other than root may have at most
//     MaxPerUID bytes waiting in the maildrop (ErrUserLimit, exit 75). The
//     shim cannot list the maildrop, so the daemon publishes what each uid
//     has waiting in STATE/spool/limits after every pass, with the limits;
//     while the daemon is down the file is stale and only the reserve holds.
//   - Partial files of killed writers are reclaimed while the daemon runs
//     (ReclaimPartials), not only at start-up.
//   - quarantine/ is bounded (PruneQuarantine): files older than a maximum
//     age go, then the oldest until the rest fits a maximum size, each with
//     a log line.

// Limits are the spool's disk limits; zero fields mean no limit.
type Limits struct {
	MinFree   int64
	MaxPerUID int64
}

// fallbackMinFree is herald.cfg's default spool-min-free, which the shim
// uses until the daemon has written STATE/spool/limits.
const fallbackMinFree = 64 << 20

// limitsName is the file in STATE/spool where the daemon publishes the
// limits and each uid's maildrop use for the shim; mode 0644, a hint only.
const limitsName = "limits"

// ErrLowSpace reports that the spool's file system is below its free-space
// reserve; ErrUserLimit that the submitting user has too much waiting. Both
// are temporary (IsTemporary).
var (
	ErrLowSpace  = errors.New("free space below the spool's reserve (spool-min-free)")
	ErrUserLimit = errors.New("too much mail of this user waiting in the spool (spool-max-per-uid)")
)

// available returns the bytes available to unprivileged users on the file
// system holding dir.
func available(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkSpace fails with ErrLowSpace when dir's file system has less than
// the reserve available: minFree, or half of it for root.
func checkSpace(dir string, minFree int64, uid int) error {
	if minFree <= 0 {
		return nil
	}
	need := minFree
	if uid == 0 {
		need = minFree / 2
	}
	avail, err := available(dir)
	if err != nil {
		return nil // the write itself will tell
	}
	if avail < need {
		return &spoolError{op: "reserve", err: fmt.Errorf("%w: %d bytes available, %d kept in reserve", ErrLowSpace, avail, need)}
	}
	return nil
}

// SetLimits sets the daemon's disk limits and publishes them for the shim.
func (s *Spool) SetLimits(l Limits) {
	s.mu.Lock()
	s.limits = l
	s.mu.Unlock()
	s.publish(nil, true)
}

func (s *Spool) currentLimits() Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// SpaceOK reports ErrLowSpace for the daemon's own ingest paths, so that
// SMTP can refuse at MAIL rather than after the data.
func (s *Spool) SpaceOK() error {
	return checkSpace(s.incoming, s.currentLimits().MinFree, -1)
}

// NoteUsage publishes each uid's bytes waiting from the shim (the maildrop
// and the submission socket), from the entries of a Pending pass, when they
// changed.
func (s *Spool) NoteUsage(entries []Entry) {
	use := map[int]int64{}
	for _, e := range entries {
		if uid, ok := e.shimUID(); ok {
			use[uid] += e.Size
		}
	}
	s.publish(use, false)
}

// publish writes STATE/spool/limits (atomically, not durably: it is a
// hint) unless its content would not change. The file is written outside
// s.mu, which Submit and SpaceOK take.
func (s *Spool) publish(use map[int]int64, limitsOnly bool) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.mu.Lock()
	if limitsOnly {
		use = s.usage
	}
	s.usage = use
	l := s.limits
	s.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "min-free %d\nmax-per-uid %d\n", l.MinFree, l.MaxPerUID)
	uids := make([]int, 0, len(use))
	for u := range use {
		uids = append(uids, u)
	}
	sort.Ints(uids)
	for _, u := range uids {
		fmt.Fprintf(&b, "uid %d %d\n", u, use[u])
	}
	if bytes.Equal(b.Bytes(), s.published) {
		return
	}
	if err := writeHint(filepath.Join(s.root, limitsName), b.Bytes()); err != nil {
		s.log.Warn("spool: cannot publish the limits for the shim", "err", err)
		return
	}
	s.published = b.Bytes()
}

// writeHint replaces path atomically (temporary file, rename) but without
// fsyncs: the limits file is a hint rewritten after every pass, and a torn
// one after a crash reads as the defaults.
func writeHint(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if err := f.Chmod(0o644); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(f.Name())
	}
	return werr
}

// readLimits reads STATE/spool/limits: the limits and uid's maildrop use.
// Without the file the reserve is fallbackMinFree and there is no per-uid
// limit.
func readLimits(root string, uid int) (Limits, int64) {
	l := Limits{MinFree: fallbackMinFree}
	data, err := os.ReadFile(filepath.Join(root, limitsName))
	if err != nil {
		return l, 0
	}
	var used int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "min-free":
			l.MinFree, _ = strconv.ParseInt(f[1], 10, 64)
		case len(f) == 2 && f[0] == "max-per-uid":
			l.MaxPerUID, _ = strconv.ParseInt(f[1], 10, 64)
		case len(f) == 3 && f[0] == "uid" && f[1] == strconv.Itoa(uid):
			used, _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	return l, used
}

// checkDrop applies the disk limits to a submission into the maildrop at
// dir by uid.
func checkDrop(dir string, uid int) error {
	l, used := readLimits(filepath.Dir(dir), uid)
	if uid != 0 && l.MaxPerUID > 0 && used >= l.MaxPerUID {
		return &spoolError{op: "per-user limit", err: fmt.Errorf("%w: uid %d has %d bytes waiting, limit %d", ErrUserLimit, uid, used, l.MaxPerUID)}
	}
	return checkSpace(dir, l.MinFree, uid)
}

// ReclaimPartials removes the partial files of writers that are gone (a
// shim killed while writing), as Recover does at start-up; the daemon calls
// it periodically. It returns how many it removed.
func (s *Spool) ReclaimPartials() int {
	n := 0
	for _, d := range s.entryDirs() {
		names, err := readNames(d.path)
		if err != nil {
			s.log.Warn("spool: cannot list for partial files", "dir", d.path, "err", err)
			continue
		}
		for _, name := range names {
			if strings.HasPrefix(name, safeio.TempPrefix) && s.recoverTemp(filepath.Join(d.path, name)) {
				n++
			}
		}
	}
	return n
}

// PruneQuarantine removes quarantined files older than maxAge, then the
// oldest ones until the rest take at most maxSize bytes (zero: no bound),
// each with a log line, and returns how many it removed.
func (s *Spool) PruneQuarantine(maxAge time.Duration, maxSize int64, now time.Time) (int, error) {
	des, err := os.ReadDir(s.quarantine)
	if err != nil {
		return 0, &spoolError{op: "prune quarantine", err: err}
	}
	type qfile struct {
		name string
		mod  time.Time
		size int64
	}
	var files []qfile
	var total int64
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, qfile{de.Name(), fi.ModTime(), fi.Size()})
		total += fi.Size()
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	removed := 0
	for _, f := range files {
		old := maxAge > 0 && now.Sub(f.mod) > maxAge
		over := maxSize > 0 && total > maxSize
		if !old && !over {
			break // the rest are younger and fit
		}
		if err := os.RemoveAll(filepath.Join(s.quarantine, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: cannot remove quarantined file", "file", f.name, "err", err)
			continue
		}
		total -= f.size
		removed++
		why := "quarantine-max-size"
		if old {
			why = "quarantine-max-age"
		}
		s.log.Warn("spool: quarantined file removed", "file", f.name, "size", f.size, "quarantined", f.mod.UTC().Format(time.RFC3339), "reason", why)
	}
	if removed > 0 {
		if err := safeio.SyncDir(s.quarantine); err != nil {
			return removed, &spoolError{op: "prune quarantine", err: err}
		}
	}
	return removed, nil
}
