// Package journal holds herald's journal target: it writes each event to the
// systemd journal with journald's native protocol (one datagram per entry to
// /run/systemd/journal/socket, or, for entries too large for a datagram, a
// sealed memfd passed with SCM_RIGHTS), and falls back to a classic syslog
// line on /dev/log where there is no journal.
//
// The protocol is implemented here rather than with go-systemd's journal
// package so that the socket path is an option (tests stand in for journald),
// the large-entry path uses a sealed memfd as journald documents
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/), and every failure reaches the
// delivery queue as a typed error instead of being printed to stderr.
package journal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/target"
)

// Default paths and identifier.
const (
	DefaultSocketPath = "/run/systemd/journal/socket"
	DefaultSyslogPath = "/dev/log"
	DefaultIdentifier = "herald"
)

// Facility is a syslog facility code (RFC 5424 §6.2.1). It is used for the
// fallback syslog line and sent to the journal as SYSLOG_FACILITY.
type Facility int

// The facilities a notification can sensibly be logged under.
const (
	FacilityUser   Facility = 1
	FacilityMail   Facility = 2
	FacilityDaemon Facility = 3
	FacilityLocal0 Facility = 16 // local1..local7 follow: FacilityLocal0+n
)

var facilityNames = map[string]Facility{
	"user": FacilityUser, "mail": FacilityMail, "daemon": FacilityDaemon,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility accepts the names user, mail, daemon and local0..local7.
func ParseFacility(s string) (Facility, error) {
	if f, ok := facilityNames[s]; ok {
		return f, nil
	}
	return 0, fmt.Errorf("invalid syslog facility %q (want daemon, mail, user or local0..local7)", s)
}

// Options configure a journal target. The zero value is the production
// default.
type Options struct {
	// Identifier is SYSLOG_IDENTIFIER in the journal and the tag of the
	// syslog line; default "herald".
	Identifier string
	// SocketPath is journald's native socket; default
	// /run/systemd/journal/socket.
	SocketPath string
	// SyslogPath is the syslog datagram socket used when there is no
	// journal; default /dev/log.
	SyslogPath string
	// Facility is the syslog facility; zero means daemon.
	Facility Facility
}

// Target writes events to the journal (or syslog). It holds no connection
// between deliveries, so it is safe for concurrent use and notices journald
// coming and going.
type Target struct {
	opt Options
	pid int
	now func() time.Time

	// memfd creates the sealed file for a large entry; a test replaces it
	// to exercise the temporary-file fallback.
	memfd func(data []byte) (*os.File, error)
}

// New returns a journal target; empty options take their defaults.
func New(opt Options) *Target {
	if opt.Identifier == "" {
		opt.Identifier = DefaultIdentifier
	}
	if opt.SocketPath == "" {
		opt.SocketPath = DefaultSocketPath
	}
	if opt.SyslogPath == "" {
		opt.SyslogPath = DefaultSyslogPath
	}
	if opt.Facility == 0 {
		opt.Facility = FacilityDaemon
	}
	return &Target{opt: opt, pid: os.Getpid(), now: time.Now, memfd: sealedMemfd}
}

var _ target.Target = (*Target)(nil)

// errNoJournal marks "there is no journald to talk to", the one journal
// failure after which the syslog fallback is tried.
var errNoJournal = errors.New("no journal socket")

// Deliver writes ev as one journal entry, or, when the journal socket is
// missing, as one syslog line. Every failure is temporary: the socket may be
// back after journald restarts.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	if ev == nil {
		return target.Permanent(errors.New("journal: nil event"))
	}
	if err := ctx.Err(); err != nil {
		return target.Temporary(fmt.Errorf("journal: %w", err), 0)
	}
	err := t.sendJournal(ctx, encode(t.entry(ev)))
	if err == nil {
		return nil
	}
	if !errors.Is(err, errNoJournal) {
		return target.Temporary(fmt.Errorf("journal %s: %w", t.opt.SocketPath, err), 0)
	}
	if serr := t.sendSyslog(ctx, t.syslogLine(ev)); serr != nil {
		return target.Temporary(fmt.Errorf("journal: %v; syslog fallback %s: %w", err, t.opt.SyslogPath, serr), 0)
	}
	return nil
}

// Priority returns the syslog level for a severity: info 6, notice 5,
// warning 4, error 3; unknown is logged as notice (5), as it is mail nobody
// classified and should neither be lost among info lines nor page anyone.
func Priority(s event.Severity) int {
	switch s {
	case event.Info:
		return 6
	case event.Notice:
		return 5
	case event.Warning:
		return 4
	case event.Error:
		return 3
	default:
		return 5
	}
}

// entry lists the journal fields of ev, event fields in sorted order so that
// the entry is deterministic.
func (t *Target) entry(ev *event.Event) []field {
	msg := ev.Title
	if ev.Body != "" {
		msg += "\n" + ev.Body
	}
	fs := []field{
		{"MESSAGE", msg},
		{"PRIORITY", strconv.Itoa(Priority(ev.Severity))},
		{"SYSLOG_FACILITY", strconv.Itoa(int(t.opt.Facility))},
		{"SYSLOG_IDENTIFIER", t.opt.Identifier},
		{"HERALD_EVENT_ID", ev.ID},
		{"HERALD_SEVERITY", ev.Severity.String()},
	}
	for _, k := range sortedKeys(ev.Fields) {
		fs = append(fs, field{event.ExportName(k), ev.Fields[k]})
	}
	return fs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// dialGram connects a datagram socket to path and arranges for ctx to
// interrupt a blocked write (journald that stopped reading).
func dialGram(ctx context.Context, path string) (*net.UnixConn, func(), error) {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		// A deadline in the past makes the pending write return at once;
		// its error is reported by the write.
		_ = conn.SetWriteDeadline(time.Unix(1, 0))
	})
	done := func() {
		stop()
		// A datagram socket's Close loses nothing already sent; there is
		// nothing useful to do with its error.
		_ = conn.Close()
	}
	return conn, done, nil
}

// missingSocket reports whether err means nobody listens at the path: the
// file does not exist, or it is a stale socket left by a dead daemon.
func missingSocket(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

func (t *Target) sendJournal(ctx context.Context, payload []byte) error {
	conn, done, err := dialGram(ctx, t.opt.SocketPath)
	if err != nil {
		if missingSocket(err) {
			return fmt.Errorf("%w: %v", errNoJournal, err)
		}
		return err
	}
	defer done()
	_, err = conn.Write(payload)
	if err == nil {
		return nil
	}
	// EMSGSIZE: larger than the socket's send buffer allows for one
	// datagram. ENOBUFS: the kernel could not allocate it. sd_journal_send
	// answers both by passing the entry in a file, and so do we.
	if !errors.Is(err, syscall.EMSGSIZE) && !errors.Is(err, syscall.ENOBUFS) {
		if missingSocket(err) {
			return fmt.Errorf("%w: %v", errNoJournal, err)
		}
		return ctxErr(ctx, err)
	}
	return ctxErr(ctx, t.sendFile(conn, payload))
}

// ctxErr prefers the context's error when the context ended, so that a
// cancelled delivery says so rather than "i/o timeout".
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// sendFile passes payload to journald as a file descriptor: an empty
// datagram carrying one fd with SCM_RIGHTS (the protocol allows no other
// combination). The file is a sealed memfd; where memfd_create is not
// available, an unlinked file in /dev/shm (or /tmp), which journald also
// accepts.
func (t *Target) sendFile(conn *net.UnixConn, payload []byte) error {
	f, err := t.memfd(payload)
	if err != nil {
		var terr error
		f, terr = tempFile(payload)
		if terr != nil {
			return fmt.Errorf("entry of %d bytes too large for a datagram; memfd: %v; temporary file: %w", len(payload), err, terr)
		}
	}
	defer func() {
		// Our copy of the descriptor; journald holds its own once the
		// message is sent.
		_ = f.Close()
	}()
	// net refuses WriteMsgUnix on a connected datagram socket, so send
	// through the raw descriptor; rc.Write still waits in the poller and
	// honours the write deadline.
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	rights := unix.UnixRights(int(f.Fd()))
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), nil, rights, nil, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("passing %d-byte entry as fd: %w", len(payload), err)
	}
	return nil
}

// sealedMemfd returns a memfd holding data, sealed against every change:
// journald refuses an unsealed memfd, since the sender could still change
// it while it is being read.
func sealedMemfd(data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("herald-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:herald-journal")
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("writing memfd: %w", err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sealing memfd: %w", err)
	}
	return f, nil
}

// tempFile is the pre-memfd method: an unlinked file directly inside
// /dev/shm or /tmp, the directories journald accepts files from
// unprivileged senders in.
func tempFile(data []byte) (*os.File, error) {
	var errs []error
	for _, dir := range []string{"/dev/shm", "/tmp"} {
		f, err := os.CreateTemp(dir, "herald-journal.")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(f.Name()); err != nil {
			errs = append(errs, err)
			_ = f.Close()
			continue
		}
		if _, err := f.Write(data); err != nil {
			errs = append(errs, err)
			_ = f.Close()
			continue
		}
		return f, nil
	}
	return nil, errors.Join(errs...)
}

// maxSyslogLine bounds the fallback line: rsyslog's default maximum message
// size is 8 KiB, and a syslog line is a summary; the full body is in the
// spool and other targets.
const maxSyslogLine = 8192

// syslogLine formats ev the way glibc's syslog(3) writes to /dev/log, the
// RFC 3164 local form "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG", which every
// syslog daemon reading /dev/log understands (RFC 5424 on /dev/log is not).
// MSG is the title, the event ID, severity and fields in brackets, then the
// body with its lines joined by " / ", all on one line.
func (t *Target) syslogLine(ev *event.Event) []byte {
	pri := int(t.opt.Facility)*8 + Priority(ev.Severity)
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>%s %s[%d]: ", pri, t.now().Format(time.Stamp), syslogTag(t.opt.Identifier), t.pid)
	b.WriteString(flatten(ev.Title))
	b.WriteString(" [event=")
	b.WriteString(kv(ev.ID))
	b.WriteString(" severity=")
	b.WriteString(ev.Severity.String())
	for _, k := range sortedKeys(ev.Fields) {
		b.WriteByte(' ')
		b.WriteString(kv(k))
		b.WriteByte('=')
		b.WriteString(kv(ev.Fields[k]))
	}
	b.WriteByte(']')
	if body := flatten(ev.Body); body != "" {
		b.WriteByte(' ')
		b.WriteString(body)
	}
	return truncate(b.String(), maxSyslogLine)
}

// syslogTag keeps the tag to what RFC 3164 allows: at most 32 printable
// characters, none of which may end the tag early (space, ':', '[').
func syslogTag(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 32 {
			break
		}
		if r <= ' ' || r >= 0x7f || r == ':' || r == '[' || r == ']' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// flatten puts text on one line: lines are trimmed and joined with " / ",
// empty lines dropped, and other control characters become spaces.
func flatten(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	out := lines[:0]
	for _, l := range lines {
		l = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, l)
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, " / ")
}

// kv quotes a key or value of the bracketed list when it would otherwise be
// ambiguous (empty, spaces, '=', ']', quotes, non-printable characters).
func kv(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r == ' ' || r == '=' || r == ']' || r == '"' || r == '\\' || r == utf8.RuneError || !unicode.IsPrint(r)
	}) {
		return s
	}
	return strconv.Quote(s)
}

// truncate cuts s to at most n bytes on a character boundary, marking the
// cut with "...".
func truncate(s string, n int) []byte {
	if len(s) <= n {
		return []byte(s)
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return []byte(s[:cut] + "...")
}

func (t *Target) sendSyslog(ctx context.Context, line []byte) error {
	conn, done, err := dialGram(ctx, t.opt.SyslogPath)
	if err != nil {
		return err
	}
	defer done()
	_, err = conn.Write(line)
	return ctxErr(ctx, err)
}

// IgnoresMail tells the delivery queue that this target never reads the raw
// mail (target.MailBlind).
func (t *Target) IgnoresMail() bool { return true }

// IsLocal tells the delivery queue that this target delivers on this
// machine (target.Local).
func (t *Target) IsLocal() bool { return true }
