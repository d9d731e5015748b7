// Package recipients resolves mailto-user entries (Proxmox user IDs such as
// root@pam) to mail addresses: a users file in Proxmox user.cfg format, and
// the recipient order of Proxmox's get_recipients. The Resolver interface is
// the seam for further sources (LDAP).
package recipients

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
)

// Resolver maps a user ID to its mail address. ok is false when the user is
// unknown or has no address.
type Resolver interface {
	Address(userid string) (addr string, ok bool)
}

// Users is a parsed users file: user ID → address. The zero value and a nil
// *Users are empty.
type Users struct {
	addr map[string]string
}

// LoadUsers reads a users file in either Proxmox style (see ParseUsers). A
// missing file gives an empty directory: a fresh install has none.
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Users{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	u, err := ParseUsers(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return u, nil
}

// ParseUsers reads user.cfg lines in both Proxmox styles, detected line by
// line, parsed as leniently as Proxmox does (the file is the product's, not
// ours: unknown lines and sections are ignored, never an error):
//
//   - PVE (/etc/pve/user.cfg): `user:<userid>:<enable>:<expire>:<first>:<last>:<email>:...`;
//     the address is the seventh field, trimmed.
//   - PBS (/etc/proxmox-backup/user.cfg), section config: a `user: <userid>`
//     header followed by indented properties, of which `email <addr>` is the
//     address. Other sections (token:, …) are skipped.
//
// As in Proxmox the first entry for a user ID wins; an empty address means
// none. Only read errors are returned.
func ParseUsers(r io.Reader) (*Users, error) {
	u := &Users{addr: map[string]string{}}
	seen := map[string]bool{}
	br := bufio.NewReader(r)
	// section is the user ID of the PBS "user:" section being read, "" when
	// outside one (or inside a section of another type).
	section, inSection := "", false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			section, inSection = u.parseLine(line, section, inSection, seen)
		}
		if err == io.EOF {
			return u, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (u *Users) parseLine(line, section string, inSection bool, seen map[string]bool) (string, bool) {
	line = strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(line) == "" {
		return "", false // a blank line ends a section
	}
	if line[0] == ' ' || line[0] == '\t' {
		// A PBS property line; only "email" inside a user section matters.
		if !inSection || section == "" {
			return section, inSection
		}
		key, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		if key == "email" && !seen[section] {
			seen[section] = true
			if v := strings.TrimSpace(value); usable(v) {
				u.addr[section] = v
			}
		}
		return section, inSection
	}
	fields := strings.Split(line, ":")
	if len(fields) == 2 {
		// PBS section header "type: id". A PVE user line always has more
		// fields, and user IDs contain no colon.
		if strings.TrimSpace(fields[0]) == "user" {
			return strings.TrimSpace(fields[1]), true
		}
		return "", true
	}
	if len(fields) > 2 && strings.TrimSpace(fields[0]) == "user" {
		id := strings.TrimSpace(fields[1])
		if id != "" && !seen[id] {
			seen[id] = true
			if len(fields) > 6 {
				if v := strings.TrimSpace(fields[6]); usable(v) {
					u.addr[id] = v
				}
			}
		}
	}
	return "", false
}

// usable reports whether v can be a mail address at all: not empty, no
// white space or control characters (which could never be sent, and which
// would corrupt a header or an SMTP command line).
func usable(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Address returns the mail address of userid.
func (u *Users) Address(userid string) (string, bool) {
	if u == nil {
		return "", false
	}
	a, ok := u.addr[userid]
	return a, ok
}

// Len returns the number of users with an address.
func (u *Users) Len() int {
	if u == nil {
		return 0
	}
	return len(u.addr)
}

// RootUser is Proxmox's superuser, the built-in mail-to-root target's
// mailto-user.
const RootUser = "root@pam"

// LocalRoot is where root@pam's mail goes when the users file has no address
// for it: root's local mailbox, so that a fresh install loses nothing.
const LocalRoot = "root"

// Recipients returns the addresses to send to, in Proxmox's get_recipients
// order: the mailto entries first, in config order, without duplicates; then
// each mailto-user's address, unless already present. A user without an
// address is skipped with a warning, except root@pam, which falls back to
// the local mailbox "root". r may be nil.
func Recipients(mailto, mailtoUser []string, r Resolver, log *slog.Logger) []string {
	var out []string
	have := map[string]bool{}
	add := func(a string) {
		if a != "" && !have[a] {
			have[a] = true
			out = append(out, a)
		}
	}
	for _, m := range mailto {
		add(strings.TrimSpace(m))
	}
	for _, id := range mailtoUser {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		var addr string
		var ok bool
		if r != nil {
			addr, ok = r.Address(id)
		}
		if ok && addr != "" {
			add(addr)
			continue
		}
		if id == RootUser {
			if log != nil {
				log.Debug("root@pam has no mail address in the user directory; using the local mailbox", "user", id, "address", LocalRoot)
			}
			add(LocalRoot)
			continue
		}
		if log != nil {
			// Proxmox's wording, so that admins searching for it find it.
			log.Warn(fmt.Sprintf("'%s' does not have a configured email address in the user configuration - not sending an email to this user", id), "user", id)
		}
	}
	return out
}

// String describes the directory without listing addresses.
func (u *Users) String() string {
	return fmt.Sprintf("users file directory (%d users with an address)", u.Len())
}
