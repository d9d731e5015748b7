package safeio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The directory operations every durable store needs: creating a directory,
// moving an unreadable file aside, opening a file for appending. Each makes
// the directory entries it creates or changes durable (the parent's fsync,
// through SyncDir) before it returns nil, so that a caller may acknowledge
// what depends on them (docs/durability.md).

// MkdirAll creates dir and any missing parents, like os.MkdirAll (perm
// before the umask), and fsyncs the parent of every directory it created,
// so that the new tree survives a crash. An existing directory is left as
// it is; something else in its place is an error.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if exists, err := isDir(dir); exists || err != nil {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Created meanwhile by someone else, who makes it durable; a
			// file there is still an error.
			return MkdirAll(dir, perm)
		}
		return err
	}
	return SyncDir(filepath.Dir(dir))
}

// Mkdir creates dir, whose parent must exist, with exactly perm (no umask;
// setgid and sticky bits kept) and fsyncs the parent. An existing directory
// is left as it is, mode included; something else in its place is an error.
func Mkdir(dir string, perm os.FileMode) error {
	if exists, err := isDir(dir); exists || err != nil {
		return err
	}
	if err := os.Mkdir(dir, perm.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(dir, perm); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(dir))
}

// isDir reports whether dir exists; something else than a directory there
// is an error.
func isDir(dir string) (bool, error) {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return false, &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// MoveAside moves the file at path into dir (created with dirPerm when
// missing) under name, or name.1, name.2, ... when that is taken: nothing
// already set aside is overwritten, nothing is deleted. Both directories are
// fsynced, so the move is durable when it returns nil: the file is then in
// dir and no longer at path. It returns where the file went.
func MoveAside(path, dir, name string, dirPerm os.FileMode) (string, error) {
	dest, err := freeName(dir, name, dirPerm)
	if err != nil {
		return "", err
	}
	if err := os.Rename(path, dest); err != nil {
		return "", err
	}
	if err := SyncDir(dir); err != nil {
		return dest, err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return dest, err
	}
	return dest, nil
}

// LinkAside is MoveAside for a file that stays where it is: a hard link in
// dir keeps its present content however the file at path is replaced
// later (by a rename over it). dir must be on path's file system. The link
// is durable when it returns nil.
func LinkAside(path, dir, name string, dirPerm os.FileMode) (string, error) {
	dest, err := freeName(dir, name, dirPerm)
	if err != nil {
		return "", err
	}
	if err := os.Link(path, dest); err != nil {
		return "", err
	}
	return dest, SyncDir(dir)
}

// freeName creates dir when missing and returns dir/name, or name.1,
// name.2, ... when that is taken.
func freeName(dir, name string, dirPerm os.FileMode) (string, error) {
	if err := MkdirAll(dir, dirPerm); err != nil {
		return "", err
	}
	dest := filepath.Join(dir, name)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
			return dest, nil
		}
		dest = filepath.Join(dir, fmt.Sprintf("%s.%d", name, i))
	}
}

// OpenAppend opens path for appending (flag adds the access mode,
// os.O_WRONLY or os.O_RDWR, and options such as O_NOFOLLOW), creating it
// with perm when missing. A file it created has its directory entry made
// durable before OpenAppend returns, so that no failure there can come
// after the caller has written to it (and so cause a second copy on retry).
// The directory must exist (MkdirAll).
func OpenAppend(path string, flag int, perm os.FileMode) (*os.File, error) {
	flag |= os.O_APPEND
	f, err := os.OpenFile(path, flag|os.O_CREATE|os.O_EXCL, perm)
	if err == nil {
		if err := SyncDir(filepath.Dir(path)); err != nil {
			_ = f.Close()
			return nil, err
		}
		return f, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return os.OpenFile(path, flag, 0)
}

// CutBack undoes a failed append to f (opened with OpenAppend): the file is
// truncated to size, what it was before the append, and fsynced, so that a
// retry leaves neither a torn record nor a second copy. It returns cause,
// with what went wrong while cutting back added to it.
func CutBack(f *os.File, size int64, cause error) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("%w (and truncating back to %d bytes failed: %v)", cause, size, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w (and fsync after truncating failed: %v)", cause, err)
	}
	return cause
}
