package mbox

// This file holds the mailbox locks Debian policy asks of every program
// that writes /var/mail: an fcntl lock and the dot-lock, taken without
// deadlocking against programs that take them in the other order.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockMailbox takes, as Debian policy asks, an fcntl write lock on the
// mailbox and then the dot-lock PATH.lock, without blocking on either:
// when the dot-lock is busy the fcntl lock is dropped again before waiting,
// so two programs taking the locks in the other order cannot deadlock. It
// polls until both are held or ctx ends. The fcntl lock is an open file
// description lock (F_OFD_SETLK): it conflicts with classic fcntl locks of
// other programs, and, unlike them, also with other deliveries in this
// process and is not dropped when an unrelated descriptor of the file closes.
func lockMailbox(ctx context.Context, f *os.File, path string) (unlock func() error, err error) {
	lockPath := path + ".lock"
	wait := 5 * time.Millisecond
	for {
		held, err := fcntlLock(f, unix.F_WRLCK)
		if err != nil {
			return nil, fmt.Errorf("fcntl lock %s: %w", path, err)
		}
		if held {
			got, err := dotLock(lockPath, time.Now())
			if err != nil {
				_, _ = fcntlLock(f, unix.F_UNLCK)
				return nil, err
			}
			if got {
				return func() error {
					rerr := os.Remove(lockPath)
					_, uerr := fcntlLock(f, unix.F_UNLCK)
					return errors.Join(rerr, uerr)
				}, nil
			}
			if _, err := fcntlLock(f, unix.F_UNLCK); err != nil {
				return nil, fmt.Errorf("fcntl unlock %s: %w", path, err)
			}
		}
		tm := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			tm.Stop()
			what := "fcntl lock"
			if held {
				what = "lock file " + lockPath
			}
			return nil, fmt.Errorf("mailbox %s still locked by another program (%s): %w", path, what, ctx.Err())
		case <-tm.C:
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

// fcntlLock sets (F_WRLCK, F_RDLCK) or clears (F_UNLCK) an OFD lock on the
// whole file without waiting; held is false when another holder conflicts.
func fcntlLock(f *os.File, typ int16) (held bool, err error) {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return err == nil, err
}

// dotLock tries once to create lockPath exclusively, writing our pid into
// it as liblockfile does. A lock file whose pid names no running process,
// or older than StaleLockAge, is removed (its owner died) and the creation
// retried once. got is false when another program holds the lock.
func dotLock(lockPath string, now time.Time) (got bool, err error) {
	for try := 0; try < 2; try++ {
		lf, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
		if err == nil {
			_, werr := lf.WriteString(strconv.Itoa(os.Getpid()) + "\n")
			cerr := lf.Close()
			if werr != nil || cerr != nil {
				_ = os.Remove(lockPath)
				return false, fmt.Errorf("write lock file %s: %w", lockPath, errors.Join(werr, cerr))
			}
			return true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			if errors.Is(err, fs.ErrPermission) {
				return false, fmt.Errorf("create lock file: %w (the mailbox directory must be writable by herald, e.g. through group mail)", err)
			}
			return false, fmt.Errorf("create lock file: %w", err)
		}
		st, err := os.Lstat(lockPath)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released between our two calls
		}
		if err != nil {
			return false, fmt.Errorf("lock file: %w", err)
		}
		if now.Sub(st.ModTime()) < StaleLockAge && !ownerDead(lockPath, st) {
			return false, nil
		}
		if err := os.Remove(lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("remove stale lock file: %w", err)
		}
	}
	return false, nil
}

// ownerDead reports whether the lock file st (at lockPath) names, as
// liblockfile and herald write it, the pid of a process that no longer
// exists: such a lock was left by a crash and is stale at once, not only
// after StaleLockAge (a daemon killed mid-delivery must not hold up every
// local delivery for minutes). A file without a readable pid (another
// program's format, or one being written right now) is judged by its age
// alone, and so is one replaced since st was taken.
func ownerDead(lockPath string, st fs.FileInfo) bool {
	f, err := os.OpenFile(lockPath, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close() // read-only
	if fst, err := f.Stat(); err != nil || !os.SameFile(fst, st) {
		return false
	}
	buf := make([]byte, 32)
	n, _ := io.ReadFull(f, buf)
	text := strings.TrimSpace(string(buf[:n]))
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 0 {
		return false
	}
	// Signal 0 checks existence only; EPERM means it exists under another
	// user.
	return errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}
