// Package spool holds herald's durable message store: every mail and event
// that any ingest path accepts (the sendmail shim, `herald notify`, SMTP, the
// HTTP API) is written here, fsynced, and only then acknowledged. The daemon
// reads committed entries, turns them into events, and removes each entry
// once its event is durably queued.
//
// # Layout
//
// Under the state directory STATE:
//
//	STATE/spool/maildrop/    written by local submitters (shim, herald notify)
//	STATE/spool/incoming/    written by the daemon itself (SMTP, HTTP API)
//	STATE/spool/quarantine/  unreadable or corrupt entries, moved aside
//	STATE/spool/journal/     the daemon's journal of its own writes (journal.go)
//
// One entry is one file named by its ID (16 hex digits of the submit time in
// Unix nanoseconds, "-", 8 random hex digits: unique, and sorting by name sorts
// by age). The file holds the line "HERALD-SPOOL 1", the envelope as one JSON
// line (ending with the body's length, body_size, which readers check), then
// the raw message bytes unchanged.
//
// # Payload first, commit last
//
// An entry is written through safeio under a temporary name (safeio.TempPrefix)
// and renamed to its ID only after the file is fsynced; the directory is
// fsynced after the rename. The rename is the commit marker: readers trust
// only names that are IDs. Submit returns success only after both fsyncs, so
// an acknowledged message is on disk. While writing, the submitter holds an
// flock(LOCK_EX) on its temporary file; recovery tries LOCK_EX|LOCK_NB to tell
// a live writer (kept) from a dead one (its partial file is removed, with a
// log line). Committed entries that cannot be parsed are moved to quarantine/
// with a log line, never deleted. The daemon's own entries and removals go
// through its journal instead (journal.go): same files, one shared flush.
//
// # Permission model
//
// In a system install the daemon runs as the user herald and the shim
// (/usr/sbin/sendmail) is setgid herald-drop, like Postfix's postdrop:
//
//	maildrop/   herald:herald-drop 1730  group may create and traverse, not list;
//	                                     others nothing; sticky, so a submitter
//	                                     can only remove or replace its own files
//	incoming/   herald 0700, files 0600  only the daemon
//	quarantine/ herald 0700              only the daemon
//
// A maildrop entry is created by the submitting process, so its file owner is
// the submitting uid. That owner, and never anything inside the file, is the
// recorded and trusted uid (Envelope.UID): a user cannot create a file owned
// by somebody else. Every other envelope field of a maildrop entry is supplied
// by the submitter and is as trustworthy as the message itself. Entry files
// are mode 0644 so the daemon (the directory owner, not the file owner) can
// read them; nobody else can reach them because the directory denies others
// any access and gives the group no read (list) permission. Users therefore
// can submit but cannot list, read or delete anybody else's mail.
//
// Because the group cannot read the maildrop directory, an unprivileged
// submitter cannot open it to fsync it after the rename. In that one case the
// submitter falls back to syncfs(2) on the committed file, which commits the
// whole file system's metadata, the new directory entry included.
package spool

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Kind says what an entry's payload is.
type Kind string

// The kinds of entries.
const (
	// KindMail is a raw RFC 5322 message.
	KindMail Kind = "mail"
	// KindEvent is an event JSON body submitted by `herald notify`.
	KindEvent Kind = "event"
)

// Envelope is the metadata stored in front of an entry's payload.
type Envelope struct {
	Kind       Kind      `json:"kind"`
	Source     string    `json:"source"` // "sendmail", "smtp", "notify", "http"
	From       string    `json:"from"`   // envelope sender
	Recipients []string  `json:"rcpt"`
	UID        int       `json:"-"` // filled by the reader: file owner for maildrop, daemon uid for incoming
	Received   time.Time `json:"received"`
	Helo       string    `json:"helo,omitempty"`
	Remote     string    `json:"remote,omitempty"`
	// PeerUID is the uid of a local client of the daemon's SMTP or HTTP
	// listener, as the kernel reports it (internal/peer), when known. Only
	// the daemon writes it: the reader drops it from maildrop entries,
	// whose submitter is the file owner (UID).
	PeerUID *int `json:"peer-uid,omitempty"`
	// Submission is the ID the sendmail shim gave one submission, written
	// both by the daemon's submission socket and by the shim's maildrop
	// fallback for the same message, so that the two become one event
	// (Entry.EventID, docs/submit.md). As trustworthy as the message.
	Submission string `json:"submission,omitempty"`
}

// Entry is one committed spool entry.
type Entry struct {
	// ID names the entry; IDs sort by submit time.
	ID string
	// Env is the envelope, with UID filled in by the reader.
	Env Envelope
	// Size is the size of the raw message in bytes (without the envelope).
	Size int64

	path string // the entry file
	off  int64  // where the raw message starts in the file
	// data, when set, is the whole entry file as this daemon's Submit
	// committed it (fresh.go): Read serves it without opening the file.
	data []byte
}

// Subdirectory names under STATE/spool.
const (
	spoolDirName      = "spool"
	maildropDirName   = "maildrop"
	incomingDirName   = "incoming"
	quarantineDirName = "quarantine"
	// kickName is the marker a submitter creates in maildrop/ to ask the
	// daemon to run its delivery queue now.
	kickName = "kick"
)

// magic is the first line of every entry file; the number is the format
// version.
const magic = "HERALD-SPOOL 1\n"

// bodySizeField ends every envelope line written since entries record their
// body's length: the writer fills its bodySizeDigits decimal digits in
// place once the body is written, before the commit. A reader compares it
// with the bytes that follow, so a truncated body is detected and
// quarantined instead of delivered. Entries written before the field
// existed have none and are taken as they are; older readers ignore it.
const (
	bodySizeField  = `,"body_size":"`
	bodySizeDigits = 20
)

// maxEnvelopeLine bounds the envelope line (its JSON, without the line
// end), so a corrupt file cannot make the daemon allocate without limit.
// Writer and reader enforce the same bound: writeEntry refuses an envelope
// the reader would quarantine (ErrEnvelopeTooLarge).
const maxEnvelopeLine = 4 << 20

// ErrTooLarge reports that a message body exceeded the size limit given to
// Submit. Nothing is left on disk.
var ErrTooLarge = errors.New("message too large")

// ErrEnvelopeTooLarge reports an envelope (recipients, sender) whose JSON
// exceeds what the reader accepts. It wraps ErrTooLarge: the caller answers
// as for a message too large (retrying cannot help).
var ErrEnvelopeTooLarge = fmt.Errorf("envelope too large (at most %d bytes of recipients and sender): %w", maxEnvelopeLine, ErrTooLarge)

// BodyError wraps an error returned by the body reader passed to Submit: the
// spool is fine, the input failed (for the shim: stdin unreadable, exit 74).
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "reading message: " + e.Err.Error() }

// Unwrap returns the reader's error.
func (e *BodyError) Unwrap() error { return e.Err }

// Temporary reports false: retrying the same input will not help the spool.
func (e *BodyError) Temporary() bool { return false }

// spoolError marks a failure of the spool itself (directory missing,
// unwritable, full): the caller should retry later.
type spoolError struct {
	op  string
	err error
}

func (e *spoolError) Error() string   { return "spool: " + e.op + ": " + e.err.Error() }
func (e *spoolError) Unwrap() error   { return e.err }
func (e *spoolError) Temporary() bool { return true }

// IsTemporary reports whether err is a temporary failure of the spool (disk
// full, quota, read-only file system, I/O error, permission problems, missing
// spool directory): the caller should answer "try again later" (sendmail exit
// 75, SMTP 451) rather than reject the message. ErrTooLarge, input errors and
// invalid envelopes are not temporary.
func IsTemporary(err error) bool {
	if err == nil || errors.Is(err, ErrTooLarge) {
		return false
	}
	var be *BodyError
	if errors.As(err, &be) {
		return false
	}
	// The errno decides first: syscall.Errno has its own Temporary method,
	// which knows nothing about a full disk being worth a retry.
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO,
			syscall.EACCES, syscall.EPERM, syscall.ENOENT, syscall.EAGAIN,
			syscall.EINTR, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM,
			syscall.EBUSY, syscall.ESTALE:
			return true
		}
	}
	var se *spoolError
	if errors.As(err, &se) {
		return true
	}
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist)
}

// NewID returns a fresh entry ID for the time now.
func NewID(now time.Time) string {
	var r [4]byte
	// crypto/rand.Read never fails on Linux (it aborts the program instead).
	_, _ = rand.Read(r[:])
	var b [16 + 1 + 8]byte
	ts := strconv.AppendUint(b[:0], uint64(now.UnixNano()), 16)
	// Left-pad to 16 digits so IDs sort by time as strings.
	out := make([]byte, 0, len(b))
	for i := len(ts); i < 16; i++ {
		out = append(out, '0')
	}
	out = append(out, ts...)
	out = append(out, '-')
	out = hex.AppendEncode(out, r[:])
	return string(out)
}

// ValidID reports whether name has the form of an entry ID.
func ValidID(name string) bool {
	if len(name) != 16+1+8 || name[16] != '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if i == 16 {
			continue
		}
		c := name[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validate checks the fields a writer must set.
func (env *Envelope) validate() error {
	switch env.Kind {
	case KindMail, KindEvent:
	default:
		return fmt.Errorf("spool: invalid envelope kind %q", env.Kind)
	}
	return nil
}

// formatError marks an entry file whose content is not a valid entry: such
// an entry goes to quarantine.
type formatError struct{ msg string }

func (e *formatError) Error() string { return "corrupt entry: " + e.msg }

// readHeader parses the magic line and the envelope from r and returns the
// envelope, the number of bytes they took, and the body length the
// envelope records (-1 for entries written before it did).
func readHeader(r io.Reader) (env Envelope, off, bodySize int64, err error) {
	br := bufio.NewReaderSize(r, 4096)
	m, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return env, 0, 0, err
	}
	if m != magic {
		if len(m) > 32 {
			m = m[:32]
		}
		return env, 0, 0, &formatError{fmt.Sprintf("bad magic %q", m)}
	}
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > maxEnvelopeLine {
				return env, 0, 0, &formatError{"envelope line too long"}
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			return env, 0, 0, &formatError{"truncated envelope"}
		}
		return env, 0, 0, err
	}
	if len(line)-1 > maxEnvelopeLine {
		return env, 0, 0, &formatError{"envelope line too long"}
	}
	if err := json.Unmarshal(bytes.TrimSuffix(line, []byte("\n")), &env); err != nil {
		return env, 0, 0, &formatError{"envelope: " + err.Error()}
	}
	if err := env.validate(); err != nil {
		return env, 0, 0, &formatError{err.Error()}
	}
	var sz struct {
		BodySize *string `json:"body_size"`
	}
	_ = json.Unmarshal(bytes.TrimSuffix(line, []byte("\n")), &sz) // the same JSON parsed above
	bodySize = -1
	if sz.BodySize != nil {
		n, err := strconv.ParseInt(*sz.BodySize, 10, 64)
		if err != nil || n < 0 {
			return env, 0, 0, &formatError{fmt.Sprintf("envelope: bad body_size %q", *sz.BodySize)}
		}
		bodySize = n
	}
	return env, int64(len(magic) + len(line)), bodySize, nil
}

// checkBodySize checks an entry's message length against the body_size
// its envelope records (-1: none recorded, from before the field).
func checkBodySize(size, bodySize int64) error {
	if bodySize >= 0 && size != bodySize {
		return &formatError{fmt.Sprintf("message is %d bytes, its envelope says %d: truncated or damaged", size, bodySize)}
	}
	return nil
}

// openEntry opens and parses the entry file at path; ownerUID says whether
// Env.UID comes from the file owner (maildrop) or is uid.
func openEntry(path, id string, ownerUID bool, uid int) (*os.File, Entry, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, Entry{}, &formatError{"entry is a symbolic link"}
		}
		return nil, Entry{}, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, Entry{}, err
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, Entry{}, &formatError{"entry is not a regular file"}
	}
	env, off, bodySize, err := readHeader(f)
	if err != nil {
		_ = f.Close()
		return nil, Entry{}, err
	}
	if err := checkBodySize(st.Size()-off, bodySize); err != nil {
		_ = f.Close()
		return nil, Entry{}, err
	}
	if ownerUID {
		// A maildrop entry is written by a local user: only the sources
		// that submit through the maildrop are believable there.
		if env.Source != "sendmail" && env.Source != "notify" {
			_ = f.Close()
			return nil, Entry{}, &formatError{fmt.Sprintf("source %q not allowed in maildrop", env.Source)}
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			_ = f.Close()
			return nil, Entry{}, errors.New("spool: no file owner available")
		}
		env.UID = int(sys.Uid)
		env.PeerUID = nil
	} else {
		env.UID = uid
	}
	return f, Entry{ID: id, Env: env, Size: st.Size() - off, path: path, off: off}, nil
}

// FromMaildrop reports whether e was submitted through the maildrop, so
// that Env.UID is its submitter (the file owner) rather than the daemon.
func (e Entry) FromMaildrop() bool {
	return filepath.Base(filepath.Dir(e.path)) == maildropDirName
}
