package app

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"herald/internal/control"
	"herald/internal/delivery"
	"herald/internal/target"
)

// offlineAdmin is the queue admin while no daemon runs. Reading works on
// the files as they are; an action (retry, drop) opens the queue for
// writing as the owner of the state directory — the herald user — so that
// root never leaves files behind that the daemon cannot use, and only when
// the queue exists: before the first start there is nothing to act on.
type offlineAdmin struct {
	delivery.ReadOnly
	stateDir string
}

func (o offlineAdmin) Retry(id string) error {
	return o.withQueue(func(q *delivery.Queue) error { return q.Retry(id) })
}

func (o offlineAdmin) Drop(id string) error {
	return o.withQueue(func(q *delivery.Queue) error { return q.Drop(id) })
}

// Flush has nothing to run without the daemon: its deliveries are tried
// when it starts.
func (o offlineAdmin) Flush() (int, error) {
	return 0, fmt.Errorf("%w with state directory %s: its deliveries are tried when it starts", control.ErrNotRunning, o.stateDir)
}

func (o offlineAdmin) withQueue(f func(q *delivery.Queue) error) error {
	dir := filepath.Join(o.stateDir, "queue")
	if !delivery.Exists(dir) {
		return fmt.Errorf("nothing is queued in %s: %w", o.stateDir, delivery.ErrNotFound)
	}
	if err := BecomeStateOwner(o.stateDir); err != nil {
		return err
	}
	q, err := delivery.Open(delivery.Options{Dir: dir, Target: func(string) (target.Target, bool) { return nil, false }})
	if err != nil {
		return err
	}
	defer q.Close()
	return f(q)
}

// BecomeStateOwner makes a root process act as the user owning stateDir
// (herald, on an installed system), so that whatever it writes there the
// daemon can use. It does nothing when not root or when root owns the
// directory. It changes the whole process: call it only from a command
// that does nothing else as root afterwards.
func BecomeStateOwner(stateDir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(stateDir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	// The supplementary groups herald.service gives the daemon
	// (SupplementaryGroups=mail: it appends to users' /var/mail/USER, which
	// are group mail 0660), so a command acting for it reaches what it does.
	var groups []int
	if g, err := user.LookupGroup("mail"); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil {
			groups = append(groups, gid)
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("acting as the owner of %s: %w", stateDir, err)
	}
	if err := syscall.Setgid(int(st.Gid)); err != nil {
		return fmt.Errorf("acting as the owner of %s: %w", stateDir, err)
	}
	if err := syscall.Setuid(int(st.Uid)); err != nil {
		return fmt.Errorf("acting as the owner of %s: %w", stateDir, err)
	}
	return nil
}
