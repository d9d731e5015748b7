// Package mbox holds the `mbox` target: it appends each event to a local
// mailbox such as /var/mail/root (or STATE/mail/root in the embedded
// default), locked the way Debian policy §11.6 asks of every program that
// touches a mailbox, so mutt, mailx, Dovecot and procmail can read and write
// it at the same time.
//
// Format: mboxrd. Each message starts with a `From SENDER DATE` line, every
// line of the message matching ^>*From␠ gets one more '>', and a blank line
// ends the message. A mail-born event is stored as the original mail with
// Return-Path and X-Herald-Event prepended; any other event is rendered as a
// plain-text RFC 5322 mail.
package mbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/mailhdr"
	"herald/internal/mailname"
	"herald/internal/safeio"
	"herald/internal/target"
)

// StaleLockAge is how old a dot-lock file must be before it is taken to be
// left over by a dead process and removed, as liblockfile does.
const StaleLockAge = 5 * time.Minute

// EventHeader is the header that names the event a message was made from;
// Delivered looks for it.
const EventHeader = "X-Herald-Event"

// Target appends events to one mailbox file.
type Target struct {
	path     string
	hostname string

	// now gives the time for the From_ line (and the Date of rendered
	// events that have none); tests fix it.
	now func() time.Time
	// wrap, when set, wraps the mailbox writer; tests use it to make a write
	// fail midway.
	wrap func(io.Writer) io.Writer
	// sync, when set, replaces the fsync of appended messages; tests count
	// fsyncs and make one fail.
	sync func(*os.File) error
	// create, when set, makes a missing mailbox (with its owner: see
	// CreateWith) instead of Deliver creating it as the daemon's user.
	create func() error
}

// Both interfaces, checked at compile time: the queue relies on Delivered
// after a crash.
var (
	_ target.Target   = (*Target)(nil)
	_ target.Verifier = (*Target)(nil)
	_ target.Batcher  = (*Target)(nil)
)

// New returns a target that appends to the mailbox at path. hostname names
// this machine in rendered mails (From: herald@HOSTNAME, Message-ID).
func New(path, hostname string) *Target {
	return &Target{path: path, hostname: mailname.Sanitize(hostname), now: time.Now}
}

// CreateWith makes Deliver call create when the mailbox does not exist yet,
// before opening it: a user's /var/mail/USER must belong to the user
// (internal/mailbox), which the daemon cannot arrange itself. It returns t.
func (t *Target) CreateWith(create func() error) *Target {
	t.create = create
	return t
}

// Path returns the mailbox the target appends to.
func (t *Target) Path() string { return t.path }

// Deliver appends ev to the mailbox under both locks and fsyncs it: a
// batch of one.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	return t.DeliverBatch(ctx, []*event.Event{ev})[0]
}

// DeliverBatch appends the events to the mailbox, in order, under one
// taking of both locks, and makes them durable with one fsync
// (target.Batcher). A failed write is cut back off the mailbox before the
// locks are released, so readers never see half a message: a message whose
// own mail cannot be read is cut back alone and fails alone; if the
// mailbox itself fails (a write, the fsync), everything the batch wrote is
// cut back and every event gets the error.
func (t *Target) DeliverBatch(ctx context.Context, evs []*event.Event) []error {
	errs := make([]error, len(evs))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if t.create != nil {
		if _, err := os.Lstat(t.path); errors.Is(err, fs.ErrNotExist) {
			if err := t.create(); err != nil {
				return fail(target.Temporary(fmt.Errorf("mbox: create %s: %w", t.path, err), 0))
			}
		}
	}
	f, err := openMailbox(t.path)
	if err != nil {
		return fail(target.Temporary(fmt.Errorf("mbox: %w", err), 0))
	}
	defer f.Close() // the locks are released explicitly below; this only frees the fd
	unlock, err := lockMailbox(ctx, f, t.path)
	if err != nil {
		return fail(target.Temporary(fmt.Errorf("mbox: %w", err), 0))
	}
	each, werr := t.appendLocked(f, evs)
	// An unlock error is deliberately not returned when the messages are
	// durable: the queue would deliver them a second time, and a lock file
	// we could not remove is taken for stale after StaleLockAge anyway.
	uerr := unlock()
	if werr != nil {
		return fail(target.Temporary(fmt.Errorf("mbox: append to %s: %w", t.path, errors.Join(werr, uerr)), 0))
	}
	for i, err := range each {
		if err != nil {
			errs[i] = target.Temporary(fmt.Errorf("mbox: append to %s: %w", t.path, err), 0)
		}
	}
	return errs
}

// appendLocked writes the events as messages at the end of the locked
// mailbox f and fsyncs it once. each holds the failures of single messages
// (their mail could not be read), each already cut back off the mailbox;
// err is a failure of the mailbox itself, after which the mailbox is cut
// back to its size before the batch.
func (t *Target) appendLocked(f *os.File, evs []*event.Event) (each []error, err error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	// The previous message must end in a blank line, or our From_ line would
	// not start a new message. A writer that died mid-message leaves none.
	var sep []byte
	if size > 0 {
		var tail [2]byte
		n := int64(min(size, 2))
		if _, err := f.ReadAt(tail[2-n:], size-n); err != nil {
			return nil, fmt.Errorf("read mailbox end: %w", err)
		}
		switch {
		case tail[1] != '\n':
			sep = []byte("\n\n")
		case size == 1 || tail[0] != '\n':
			sep = []byte("\n")
		}
	}
	var w io.Writer = f
	if t.wrap != nil {
		w = t.wrap(w)
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	each = make([]error, len(evs))
	cut := false // a single message was cut back
	for i, ev := range evs {
		mark := size + cw.n + int64(bw.Buffered()) // where this message starts
		var err error
		if mark == size {
			_, err = bw.Write(sep) // messages of this batch end in a blank line
		}
		if err == nil {
			err = t.writeEntry(bw, ev, t.now())
		}
		if err == nil {
			continue
		}
		if cw.err != nil {
			break // the mailbox failed, not this message: all is cut back below
		}
		// This message's mail could not be read: what of it went in goes,
		// and the batch goes on.
		bw.Reset(cw)
		if size+cw.n > mark {
			if terr := f.Truncate(mark); terr != nil {
				err = fmt.Errorf("%w (and truncating back to %d bytes failed: %v)", err, mark, terr)
				cw.err = err
				break
			}
			cw.n = mark - size
			cut = true
		}
		each[i] = err
	}
	err = cw.err
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && (cw.n > 0 || cut) {
		err = t.syncFile(f)
	}
	if err != nil {
		// As local delivery agents do: leave the mailbox exactly as it was.
		return nil, safeio.CutBack(f, size, err)
	}
	return each, nil
}

// countingWriter counts the bytes that reached w and keeps w's first
// error, so that appendLocked knows where the mailbox ends and whether it
// was the mailbox that failed.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// syncFile fsyncs f, or calls the test's hook instead.
func (t *Target) syncFile(f *os.File) error {
	if t.sync != nil {
		return t.sync(f)
	}
	return f.Sync()
}

// openMailbox opens path for appending, refusing symlinks and anything but
// a regular file, and creates it (0600, directory 0700) when missing. A new
// mailbox's directory entry is made durable before any message goes in, so
// a failure there cannot come after a message was written (and so cannot
// cause a second copy on retry).
func openMailbox(path string) (f *os.File, err error) {
	if err := safeio.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err = safeio.OpenAppend(path, os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink: refusing to deliver through it", path)
		}
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// writeEntry writes ev as one mboxrd message: From_ line, the escaped
// message, and a blank line.
func (t *Target) writeEntry(w *bufio.Writer, ev *event.Event, now time.Time) error {
	sender := "MAILER-DAEMON"
	if ev.Mail != nil {
		if s := safeAddr(ev.Mail.From); s != "" {
			sender = s
		}
	}
	if _, err := fmt.Fprintf(w, "From %s %s\n", sender, now.Format(time.ANSIC)); err != nil {
		return err
	}
	var msg []byte
	if ev.Mail != nil {
		var hdr bytes.Buffer
		fmt.Fprintf(&hdr, "Return-Path: <%s>\n%s: %s\n", safeAddr(ev.Mail.From), EventHeader, headerID(ev.ID))
		if _, err := w.Write(hdr.Bytes()); err != nil {
			return err
		}
		if ev.Mail.Open != nil {
			// A large mail the queue mapped: streamed from its file
			// (stream.go), never held in memory.
			if err := writeMailFrom(w, ev.Mail.Open); err != nil {
				return err
			}
			_, err := w.WriteString("\n")
			return err
		}
		msg = mailhdr.StripFromLine(ev.Mail.Raw)
	} else {
		msg = t.render(ev, now)
	}
	if err := writeEscaped(w, msg); err != nil {
		return err
	}
	_, err := w.WriteString("\n")
	return err
}

// writeEscaped writes msg line by line: CRLF becomes LF, lines matching
// ^>*From␠ get one more '>' (mboxrd, so readers can undo it exactly), and
// the last line is terminated.
func writeEscaped(w *bufio.Writer, msg []byte) error {
	for len(msg) > 0 {
		line := msg
		rest := []byte(nil)
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, rest = msg[:i], msg[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if needsEscape(line) {
			if err := w.WriteByte('>'); err != nil {
				return err
			}
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if err := w.WriteByte('\n'); err != nil {
			return err
		}
		msg = rest
	}
	return nil
}

// needsEscape reports whether line matches ^>*From␠.
func needsEscape(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}

// render turns an event without mail into a plain-text RFC 5322 message
// (LF line endings; writeEscaped does the rest).
func (t *Target) render(ev *event.Event, now time.Time) []byte {
	date := ev.Timestamp
	if date.IsZero() {
		date = now
	}
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(fold(name + ": " + value))
		b.WriteByte('\n')
	}
	header("From", "herald@"+t.hostname)
	header("To", "root")
	header("Subject", mime.QEncoding.Encode("utf-8", mailhdr.OneLine(ev.Title)))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", "<"+msgIDLocal(ev.ID)+"@"+t.hostname+">")
	header(EventHeader, headerID(ev.ID))
	header("X-Herald-Severity", ev.Severity.String())
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteByte('\n')
	b.WriteString(ev.Body)
	if ev.Body != "" && !strings.HasSuffix(ev.Body, "\n") {
		b.WriteByte('\n')
	}
	if len(ev.Fields) > 0 {
		if ev.Body != "" {
			b.WriteByte('\n')
		}
		b.WriteString("--\n")
		keys := make([]string, 0, len(ev.Fields))
		for k := range ev.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", mailhdr.OneLine(k), mailhdr.OneLine(ev.Fields[k]))
		}
	}
	return b.Bytes()
}

// fold breaks a header line longer than 78 characters at spaces, keeping
// each space as the continuation line's leading white space (RFC 5322 §2.2.3:
// unfolding restores the original). A run without spaces stays long.
func fold(line string) string {
	const limit = 78
	if len(line) <= limit {
		return line
	}
	var b strings.Builder
	start := 0 // start of the current output line within line
	for start < len(line) {
		if len(line)-start <= limit {
			b.WriteString(line[start:])
			break
		}
		// The last space within the limit that is not the line's first
		// character (a continuation line must keep something after its WSP).
		cut := strings.LastIndexByte(line[start+1:start+limit], ' ')
		if cut < 0 {
			next := strings.IndexByte(line[start+1:], ' ')
			if next < 0 {
				b.WriteString(line[start:])
				break
			}
			cut = next
		}
		cut += start + 1
		b.WriteString(line[start:cut])
		b.WriteByte('\n')
		start = cut
	}
	return b.String()
}

// headerID is the event ID as written in X-Herald-Event.
func headerID(id string) string { return strings.ReplaceAll(mailhdr.OneLine(id), " ", "_") }

// msgIDLocal makes the ID usable as the left part of a Message-ID.
func msgIDLocal(id string) string {
	return strings.Map(func(r rune) rune {
		if r > ' ' && r < 0x7f && !strings.ContainsRune(`<>()[]\@,;:"`, r) {
			return r
		}
		return '_'
	}, id)
}

// safeAddr makes an envelope address fit a From_ line and Return-Path:
// white space, control characters and angle brackets go.
func safeAddr(a string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' {
			return -1
		}
		return r
	}, a)
}

// Delivered reports whether the mailbox holds a complete message whose
// header names ev (X-Herald-Event). It reads the whole mailbox under a
// shared fcntl lock, so it is meant for crash recovery only.
func (t *Target) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	f, err := os.OpenFile(t.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mbox: %w", err)
	}
	defer f.Close() // read-only; closing also drops the read lock
	wait := 5 * time.Millisecond
	for {
		held, err := fcntlLock(f, unix.F_RDLCK)
		if err != nil {
			return false, fmt.Errorf("mbox: fcntl lock %s: %w", t.path, err)
		}
		if held {
			break
		}
		tm := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			tm.Stop()
			return false, fmt.Errorf("mbox: %s still locked: %w", t.path, ctx.Err())
		case <-tm.C:
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
	return containsEvent(f, headerID(ev.ID))
}

// containsEvent scans an mbox for a message whose header section holds
// "X-Herald-Event: id" and that is complete: followed by a blank line and
// then the next From_ line or the end of the file. A message cut short by a
// crash does not count, so it is delivered again.
func containsEvent(r io.Reader, id string) (bool, error) {
	want := []byte(EventHeader + ": " + id)
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		prevBlank   = true // the file's start counts as after a blank line
		lineStart   = true
		inHeaders   bool
		found       bool // in the current message
		lastNewline bool
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			complete := chunk[len(chunk)-1] == '\n'
			blank := false
			if lineStart {
				content := bytes.TrimSuffix(chunk, []byte("\n"))
				switch {
				case prevBlank && bytes.HasPrefix(content, []byte("From ")):
					if found {
						return true, nil
					}
					inHeaders = true
				case inHeaders && complete && len(content) == 0:
					inHeaders = false
				case inHeaders && complete && bytes.Equal(content, want):
					found = true
				}
				blank = complete && len(content) == 0
			}
			prevBlank = blank
			lineStart = complete
			lastNewline = complete
		}
		if err == io.EOF {
			return found && prevBlank && lastNewline, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return false, err
		}
	}
}

// IsLocal tells the delivery queue that this target delivers on this
// machine (target.Local).
func (t *Target) IsLocal() bool { return true }
