// Package shim holds herald's /usr/sbin/sendmail drop-in: the option
// set of Postfix's sendmail, the header fixing that local mail needs (-t,
// missing From/Date/Message-ID), and submission: over the running daemon's
// socket (submit.go, internal/submit), else into the spool's maildrop.
// It also answers as mailq (-bp) and newaliases (-bi). It imports only what
// submission needs, so the shim starts fast: callers like cron run it once
// per job.
//
// Exit statuses follow <sysexits.h> (internal/sysexits): 0 queued, 64 bad
// usage or no recipients, 65 message too large, 74 stdin unreadable, 75 the
// spool is missing, full or unwritable (the caller should retry; the message
// was not kept), 77 mailq without the right to list, 78 bad environment.
package shim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"herald/internal/mailname"
	"herald/internal/spool"
	"herald/internal/sysexits"
)

// DefaultStateDir is the state directory used when HERALD_STATE_DIR is not
// set. It is a variable so that a build can set it at link time
// (-ldflags "-X herald/internal/shim.DefaultStateDir=/srv/herald"): a
// compiled-in directory is trusted with the shim's setgid group, an
// environment variable is not.
var DefaultStateDir = "/var/lib/herald"

// DefaultMaxSize is the largest message the shim queues unless
// HERALD_MAX_MESSAGE_SIZE says otherwise.
const DefaultMaxSize = 32 << 20

// ServeSMTP runs the -bs SMTP dialogue on in/out, submitting into d, and
// returns the exit status. The binary sets it (the SMTP session lives in
// internal/smtpd, which the shim package does not import); nil means -bs is
// not available.
var ServeSMTP func(in io.Reader, out io.Writer, d *spool.Drop) int

const usage = `usage: sendmail [-t] [-i] [-f sender] [-F fullname] [-bm|-bs|-bp|-bi] [-q] [-v] [--] [recipient ...]
       mailq
       newaliases
`

// Main runs the shim with the given argv and standard streams and returns
// its exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	prog := "sendmail"
	if len(args) > 0 {
		switch b := filepath.Base(args[0]); b {
		case "mailq", "newaliases":
			prog = b
		}
		args = args[1:]
	}
	o, err := ParseArgs(prog, args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n%s", prog, err, usage)
		return sysexits.Usage
	}
	switch o.Mode {
	case ModeAliases:
		return newAliases(prog, stdout, stderr)
	case ModeList:
		return listQueue(prog, stdout, stderr)
	case ModeRunQueue:
		d, code := openDrop(prog, stderr)
		if d == nil {
			return code
		}
		if err := d.Kick(); err != nil {
			fmt.Fprintf(stderr, "%s: cannot ask the daemon to run the queue: %v\n", prog, err)
			return sysexits.TempFail
		}
		return sysexits.OK
	case ModeSMTP:
		d, code := openDrop(prog, stderr)
		if d == nil {
			return code
		}
		if ServeSMTP == nil {
			fmt.Fprintf(stderr, "%s: -bs is not available in this build\n", prog)
			return sysexits.Software
		}
		return ServeSMTP(stdin, stdout, d)
	}
	return deliver(prog, o, stdin, stderr)
}

// heraldCfg returns the text of herald.cfg, nil when it cannot be read.
// The shim reads the file once per call and takes the two keys it needs
// from that text (spoolDirIn, mailNameIn). A directory named by
// HERALD_STATE_DIR or HERALD_CONFIG_DIR is the caller's choice, so the
// shim first gives up its setgid group (and a setuid owner, should it ever
// be installed so): otherwise any user could use the shim's group to read
// or write wherever that group may.
func heraldCfg() ([]byte, error) {
	cfgDir := os.Getenv("HERALD_CONFIG_DIR")
	if cfgDir != "" || os.Getenv("HERALD_STATE_DIR") != "" {
		if err := dropPrivileges(); err != nil {
			return nil, err
		}
	}
	if cfgDir == "" {
		cfgDir = DefaultConfigDir
	}
	data, _ := os.ReadFile(filepath.Join(cfgDir, "herald.cfg"))
	return data, nil
}

// spoolDir returns the spool directory (spoolDirIn of herald.cfg).
func spoolDir() (string, error) {
	cfg, err := heraldCfg()
	if err != nil {
		return "", err
	}
	return spoolDirIn(cfg), nil
}

// spoolDirIn returns herald.cfg's spool-dir when cfg sets one, else
// STATE/spool.
func spoolDirIn(cfg []byte) string {
	if dir := configSpoolDir(cfg); dir != "" {
		return dir
	}
	state := os.Getenv("HERALD_STATE_DIR")
	if state == "" {
		state = DefaultStateDir
	}
	return filepath.Join(state, "spool")
}

// DefaultConfigDir is where herald.cfg is read when HERALD_CONFIG_DIR is
// not set.
const DefaultConfigDir = "/etc/herald"

// configSpoolDir returns the spool-dir of herald.cfg text, "" when the key
// is missing. The shim reads only its few keys, with a line scan rather
// than the config package, to start fast; `herald check` validates the
// file (spool-dir must be an absolute path), and a relative or odd value is
// ignored here.
func configSpoolDir(cfg []byte) string {
	for _, line := range strings.Split(string(cfg), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "spool-dir" && filepath.IsAbs(f[1]) {
			return filepath.Clean(f[1])
		}
	}
	return ""
}

// privileged reports whether the process runs with a set-id identity.
func privileged() bool {
	return os.Getegid() != os.Getgid() || os.Geteuid() != os.Getuid()
}

// dropPrivileges sets the effective (and saved) ids to the real ones, for
// every thread.
func dropPrivileges() error {
	if gid := os.Getgid(); os.Getegid() != gid {
		if err := syscall.Setregid(gid, gid); err != nil {
			return fmt.Errorf("cannot drop group privileges: %w", err)
		}
	}
	if uid := os.Getuid(); os.Geteuid() != uid {
		if err := syscall.Setreuid(uid, uid); err != nil {
			return fmt.Errorf("cannot drop user privileges: %w", err)
		}
	}
	if privileged() {
		return errors.New("cannot drop privileges")
	}
	return nil
}

// maxSize returns the message size limit. A set-id shim only lets the
// environment lower it: raising it would let any user fill the spool past
// what the administrator allowed.
func maxSize() (int64, error) {
	v := os.Getenv("HERALD_MAX_MESSAGE_SIZE")
	if v == "" {
		return DefaultMaxSize, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid HERALD_MAX_MESSAGE_SIZE %q: want a number of bytes (0: no limit)", v)
	}
	if privileged() && (n == 0 || n > DefaultMaxSize) {
		return DefaultMaxSize, nil
	}
	return n, nil
}

// openDrop opens the maildrop, or reports why not and returns the exit
// status.
func openDrop(prog string, stderr io.Writer) (*spool.Drop, int) {
	dir, err := spoolDir()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return nil, sysexits.OSErr
	}
	return openDropDir(prog, dir, stderr)
}

// openDropDir is openDrop for the spool at dir.
func openDropDir(prog, dir string, stderr io.Writer) (*spool.Drop, int) {
	d, err := spool.OpenDropDir(dir)
	if err != nil {
		fmt.Fprintf(stderr, "%s: cannot queue message: %v (temporary failure; try again later)\n", prog, err)
		return nil, sysexits.TempFail
	}
	return d, sysexits.OK
}

// identity is who is sending, as far as the shim can tell.
type identity struct {
	login string // login name, or the uid as a number
	gecos string // full name from the password database
	host  string
}

// whoami is the sender; host is the mail name (mailNameIn).
func whoami(host string) identity {
	id := identity{login: strconv.Itoa(os.Getuid()), host: host}
	// The real uid, never $USER or $LOGNAME: the caller controls those.
	if u, err := user.LookupId(id.login); err == nil && u.Username != "" {
		id.login = u.Username
		id.gecos = u.Name
	}
	return id
}

// MailName is the domain of the sender's address and of the Message-ID
// (and the shim's -bs greeting): mailNameIn of herald.cfg.
func MailName() string {
	cfg, _ := heraldCfg() // a failed drop of privileges is reported on the way to the spool
	return mailNameIn(cfg)
}

// mailNameIn is herald.cfg's mail-name in cfg, else /etc/mailname, else
// the FQDN, as the daemon qualifies bare addresses (internal/mailname: file
// reads only).
func mailNameIn(cfg []byte) string {
	if n := mailname.ConfigValue(cfg); n != "" {
		return n
	}
	return mailname.System(mailname.File, mailname.HostsFile, hostname())
}

// hostname returns the host name as the kernel has it, reduced to the
// characters a domain may hold.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return mailname.Sanitize(h)
}

// newMessageID returns a Message-ID value for a message submitted now.
func newMessageID(now time.Time, host string) string {
	var r [8]byte
	_, _ = rand.Read(r[:]) // never fails on Linux
	return "<" + now.UTC().Format("20060102150405") + "." + hex.EncodeToString(r[:]) + "@" + host + ">"
}

// deliver reads the message on stdin, fixes its header and queues it.
func deliver(prog string, o Options, stdin io.Reader, stderr io.Writer) int {
	if len(o.Recipients) == 0 && !o.ExtractRecipients {
		fmt.Fprintf(stderr, "%s: no recipients: give recipient addresses as arguments or use -t\n%s", prog, usage)
		return sysexits.Usage
	}
	limit, err := maxSize()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return sysexits.Config
	}
	// Read first: a directory named by the environment drops the setgid
	// group before the socket or the maildrop is reached.
	cfg, err := heraldCfg()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return sysexits.OSErr
	}
	dir := spoolDirIn(cfg)

	who := whoami(mailNameIn(cfg))
	self := who.login + "@" + who.host
	sender := self
	if o.SenderSet {
		sender = o.Sender
	}
	fromAddr := sender
	if fromAddr == "" || fromAddr == "<>" {
		fromAddr = self // the null sender is an envelope matter only
	}
	name := o.FullName
	if name == "" {
		name = who.gecos
	}
	now := time.Now()

	in := newMsgReader(stdin, !o.IgnoreDots)
	h, err := readHeaderBlock(in)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error reading input: %v\n", prog, err)
		return sysexits.IOErr
	}
	head, hdrRcpts := h.fix(fixes{
		extract: o.ExtractRecipients,
		from:    formatFrom(name, fromAddr),
		date:    now.Format(time.RFC1123Z),
		msgID:   newMessageID(now, who.host),
	})
	// Postfix adds -t's header recipients to those on the command line.
	rcpts := dedupe(append(append([]string(nil), o.Recipients...), hdrRcpts...))

	env := spool.Envelope{
		Kind:       spool.KindMail,
		Source:     "sendmail",
		From:       sender,
		Recipients: rcpts,
	}
	body := io.MultiReader(strings.NewReader(string(head)), h.tail(in))
	// The daemon's socket first (submit.go); the maildrop when it does not
	// take the message.
	id, via, code, body := submitSocket(prog, o, &env, body, limit, stderr)
	if code >= 0 {
		return code
	}
	if id == "" {
		d, code := openDropDir(prog, dir, stderr)
		if d == nil {
			return code
		}
		id, err = d.Submit(env, body, limit)
		via = "the maildrop"
	}
	if err != nil {
		var be *spool.BodyError
		switch {
		case errors.As(err, &be):
			fmt.Fprintf(stderr, "%s: error reading input: %v\n", prog, be.Err)
			return sysexits.IOErr
		case errors.Is(err, spool.ErrEnvelopeTooLarge):
			// The daemon could not read such an entry back: refused here,
			// never acknowledged and then quarantined.
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
			return sysexits.DataErr
		case errors.Is(err, spool.ErrTooLarge):
			// Not 75: retrying cannot make the message fit. Postfix
			// answers "message file too big" with 69 (EX_UNAVAILABLE);
			// herald says what it is, bad data (65), as docs/interfaces.md §3.1 lists.
			fmt.Fprintf(stderr, "%s: message too large: the limit is %d bytes\n", prog, limit)
			return sysexits.DataErr
		case spool.IsTemporary(err):
			fmt.Fprintf(stderr, "%s: cannot queue message: %v (temporary failure; try again later)\n", prog, err)
			return sysexits.TempFail
		default:
			fmt.Fprintf(stderr, "%s: cannot queue message: %v\n", prog, err)
			return sysexits.CantCreat
		}
	}
	if o.ExtractRecipients && len(rcpts) == 0 {
		// Accepted anyway: herald routes by matchers, not by address, and
		// Postfix too accepts the message (and bounces it later).
		fmt.Fprintf(stderr, "%s: warning: no recipient addresses found in the message header\n", prog)
	}
	if o.Verbose {
		fmt.Fprintf(stderr, "%s: queued as %s through %s (from <%s> to %s)\n", prog, id, via, sender, strings.Join(rcpts, ", "))
	}
	return sysexits.OK
}

// dedupe removes repeated addresses, keeping the first occurrence.
func dedupe(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0]
	for _, a := range list {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// listQueue implements mailq / -bp. herald's own `herald queue mailq`
// prints the listing: it asks the running daemon, which shows any user
// their own submissions (and root everything), so the shim replaces itself
// with it, without its setgid group. Only when herald cannot be found does
// the shim list the spool itself, which needs the right to read it.
func listQueue(prog string, stdout, stderr io.Writer) int {
	if code, ok := execMailq(prog, stdout, stderr); ok {
		return code
	}
	dir, err := spoolDir()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return sysexits.OSErr
	}
	entries, err := spool.ListDir(dir)
	switch {
	case errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(stderr, "%s: permission denied: only root and the herald user can list the queue\n", prog)
		return sysexits.NoPerm
	case err != nil:
		fmt.Fprintf(stderr, "%s: cannot read the queue: %v\n", prog, err)
		return sysexits.TempFail
	}
	if err := PrintQueue(stdout, entries); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return sysexits.IOErr
	}
	return sysexits.OK
}

// execMailq replaces the process with `herald queue mailq`; ok is false
// when no herald binary is found (or, in tests, Main's streams are not the
// process's own, so exec would bypass them: the command then runs as a
// child writing to them).
func execMailq(prog string, stdout, stderr io.Writer) (code int, ok bool) {
	for _, h := range heraldPaths() {
		if fi, err := os.Stat(h); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		// herald must not inherit the shim's setgid group: it needs none.
		if gid := os.Getgid(); os.Getegid() != gid {
			if err := syscall.Setregid(gid, gid); err != nil {
				fmt.Fprintf(stderr, "%s: cannot drop the group privilege: %v\n", prog, err)
				return sysexits.OSErr, true
			}
		}
		if stdout != io.Writer(os.Stdout) {
			cmd := exec.Command(h, "queue", "mailq")
			cmd.Stdout, cmd.Stderr = stdout, stderr
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) && ee.ExitCode() >= 0 {
					return ee.ExitCode(), true
				}
				fmt.Fprintf(stderr, "%s: cannot run %s: %v\n", prog, h, err)
				return sysexits.OSErr, true
			}
			return sysexits.OK, true
		}
		err := syscall.Exec(h, []string{"herald", "queue", "mailq"}, os.Environ())
		fmt.Fprintf(stderr, "%s: cannot run %s: %v\n", prog, h, err)
		return sysexits.OSErr, true
	}
	return 0, false
}

// heraldPaths are where the herald command is looked for: next to the
// shim (a build tree, the package's /usr/sbin → /usr/bin is covered by the
// second entry), then the packaged path.
func heraldPaths() []string {
	var ps []string
	if exe, err := os.Executable(); err == nil {
		ps = append(ps, filepath.Join(filepath.Dir(exe), "herald"))
	}
	return append(ps, "/usr/bin/herald")
}

// PrintQueue writes entries in the format of Postfix's mailq: one block per
// entry (ID, size, arrival time, sender, then one recipient per line) and a
// total, or "Mail queue is empty".
func PrintQueue(w io.Writer, entries []spool.Entry) error {
	if len(entries) == 0 {
		_, err := io.WriteString(w, "Mail queue is empty\n")
		return err
	}
	const indent = 25 + 1 + 8 + 1 + 20 + 1
	var b strings.Builder
	fmt.Fprintf(&b, "%-25s %8s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
	var total int64
	for _, e := range entries {
		total += e.Size
		from := e.Env.From
		if from == "" {
			from = "<>"
		}
		who := fmt.Sprintf("%s (uid %d, %s", from, e.Env.UID, e.Env.Source)
		if e.Env.Kind == spool.KindEvent {
			who += " event"
		}
		who += ")"
		fmt.Fprintf(&b, "%-25s %8d %-20s %s\n", e.ID, e.Size, e.Env.Received.Local().Format("Mon Jan _2 15:04:05"), who)
		for _, r := range e.Env.Recipients {
			fmt.Fprintf(&b, "%*s%s\n", indent, "", r)
		}
		b.WriteString("\n")
	}
	req := "Requests"
	if len(entries) == 1 {
		req = "Request"
	}
	fmt.Fprintf(&b, "-- %d Kbytes in %d %s.\n", (total+1023)/1024, len(entries), req)
	_, err := io.WriteString(w, b.String())
	return err
}
