// Package mailbox creates local users' mailboxes the way Debian lays them
// out: /var/mail/USER, owned by the user, group mail, mode 0660, so that the
// user's mail reader and every program in group mail (herald among them)
// can read and append. Creating a file owned by someone else needs root; the
// unprivileged daemon asks a tiny privileged helper (cmd/herald-mbox-create,
// the way dma's dma-mbox-create works) that does this one thing and nothing
// else. docs/recipients.md describes the set-up.
//
// The helper protocol is one line each way: the daemon writes a user name
// and a newline; the helper answers "ok" or "error: REASON". The same
// protocol runs over the helper's stdin/stdout (socket activation with
// Accept=yes, or a direct exec by a root daemon).
package mailbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/mailhdr"
	"herald/internal/safeio"
)

// Defaults of a Debian system.
const (
	// DefaultDir is Debian's mail spool directory.
	DefaultDir = "/var/mail"
	// Group owns every mailbox.
	Group = "mail"
	// Mode of a new mailbox.
	Mode = 0o660
	// DefaultSocket is where the helper listens under systemd
	// (herald-mbox.socket).
	DefaultSocket = "/run/herald/mbox.sock"
)

// maxName bounds a user name (useradd allows 32 characters).
const maxName = 32

// ValidName reports whether name can be a local user's mailbox name:
// POSIX portable user name characters, not starting with '-' or '.'.
func ValidName(name string) bool {
	if name == "" || len(name) > maxName || name[0] == '-' || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		case c == '$' && i == len(name)-1: // Samba machine accounts
		default:
			return false
		}
	}
	return true
}

// Create makes dir/name for the local user name: owner the user, group
// mail, mode 0660, durable (file and directory synced). A mailbox that
// already exists is left as it is, provided it is a regular file (never a
// symlink). It needs root (or CAP_CHOWN) unless the caller is the user.
func Create(dir, name string) error {
	if !ValidName(name) {
		return fmt.Errorf("invalid user name %q", name)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("no local user %q", name)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("user %q: uid %q", name, u.Uid)
	}
	g, err := user.LookupGroup(Group)
	if err != nil {
		return fmt.Errorf("no group %q", Group)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return fmt.Errorf("group %q: gid %q", Group, g.Gid)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, fs.ErrExist) {
		fi, lerr := os.Lstat(path)
		if lerr != nil {
			return lerr
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s exists and is not a regular file", path)
		}
		return nil
	}
	if err != nil {
		return err
	}
	// Owner and mode on the open file: nobody can swap the path meanwhile.
	err = f.Chown(uid, gid)
	if err == nil {
		err = f.Chmod(Mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path) // half-made: let the next attempt start over
		return err
	}
	return safeio.SyncDir(dir)
}

// Serve answers one request of the helper protocol on r/w, creating the
// mailbox in dir. It returns the error it reported, if any.
func Serve(r io.Reader, w io.Writer, dir string) error {
	br := bufio.NewReader(io.LimitReader(r, maxName+2))
	line, err := br.ReadString('\n')
	if err != nil {
		err = fmt.Errorf("request: want a user name and a newline")
	} else {
		err = Create(dir, strings.TrimSuffix(line, "\n"))
	}
	reply := "ok\n"
	if err != nil {
		reply = "error: " + mailhdr.OneLine(err.Error()) + "\n"
	}
	if _, werr := io.WriteString(w, reply); werr != nil && err == nil {
		err = werr
	}
	return err
}

// Creator makes missing mailboxes for a daemon: itself when it runs as root,
// else through the helper's socket.
type Creator struct {
	Dir    string
	Socket string // "" = DefaultSocket
	// Timeout bounds one request; 0 = 10 s.
	Timeout time.Duration
	// viaHelper forces the socket even for root (tests).
	viaHelper bool
}

// Create makes dir/name with the right owner.
func (c Creator) Create(name string) error {
	if os.Geteuid() == 0 && !c.viaHelper {
		return Create(c.Dir, name)
	}
	sock := c.Socket
	if sock == "" {
		sock = DefaultSocket
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	conn, err := net.DialTimeout("unix", sock, timeout)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("mailbox helper not reachable at %s (is herald-mbox.socket running?): %w", sock, err)
		}
		return fmt.Errorf("mailbox helper %s: %w", sock, err)
	}
	defer func() { _ = conn.Close() }() // the answer is read; closing adds nothing
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, name+"\n"); err != nil {
		return fmt.Errorf("mailbox helper %s: %w", sock, err)
	}
	reply, err := bufio.NewReader(io.LimitReader(conn, 4096)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("mailbox helper %s: no answer: %w", sock, err)
	}
	reply = strings.TrimSuffix(reply, "\n")
	if reply != "ok" {
		return fmt.Errorf("mailbox helper: %s", strings.TrimPrefix(reply, "error: "))
	}
	return nil
}
