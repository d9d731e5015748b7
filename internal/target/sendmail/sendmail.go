// Package sendmail is the sendmail notification target: mail
// through herald's own outbound path. herald replaces the local MTA, so
// unlike Proxmox it cannot pipe into /usr/sbin/sendmail (that is herald's
// shim); instead, in this order of preference:
//
//  1. SendmailPath set: an external MTA binary is run as Proxmox runs
//     sendmail (`-N never` for forwarded system mail, `-B 8BITMIME` for
//     composed mail, `-f FROM -- RCPT…`), and — unlike Proxmox — its exit
//     status counts: 0 ok, 75 (EX_TEMPFAIL) temporary, anything else
//     permanent. herald's own shim is refused: that would loop.
//  2. Otherwise each recipient that is local (root, user@localhost,
//     user@<hostname>, a bare existing user name) goes to that user's local
//     mailbox, and every other recipient to the smarthost Relay over SMTP
//     (the smtp target's code). A remote recipient without a relay is a
//     permanent error — but the local ones still get their copy, and are
//     not delivered again when the queue retries the rest.
//
// System mail (ev.Mail set, type system-mail) is forwarded exactly as
// received; every other event is composed by mailout.Compose.
package sendmail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"herald/internal/aliases"
	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailout"
	"herald/internal/target"
	"herald/internal/target/smtp"
)

// Relay is the smarthost: the `relay` settings of herald.cfg.
type Relay struct {
	Host      string
	Port      int    // 0: by mode
	Mode      string // insecure | starttls | tls (see the smtp target)
	Username  string
	Password  config.Secret
	TLSConfig *tls.Config
}

// Options configure a Target.
type Options struct {
	To       []string // recipients, already resolved (directory.Recipients)
	From     string   // envelope sender and From address; "" = "root" (Proxmox's default)
	Author   string   // From display name; "" = "herald"
	Hostname string   // this machine's name: local domain, EHLO name; "" = os.Hostname()
	// Recipients, when set, resolves the recipients per event and replaces
	// To (mailto-field, aliases).
	Recipients target.Recipients
	// LocalDomains are further domains that are this host's (its short
	// name, its mail name): their recipients are local too.
	LocalDomains []string

	Relay *Relay // smarthost for remote recipients; nil = none
	// LocalMailbox returns the mailbox target of a local user (the app
	// supplies STATE/mail/USER or /var/mail/USER); ok false = none.
	LocalMailbox func(user string) (t target.Target, ok bool)
	// SendmailPath is an external MTA's sendmail binary; "" = none.
	SendmailPath string
	// ShimPaths are herald's own sendmail shims (e.g. /usr/sbin/sendmail
	// when herald is the MTA): a SendmailPath that is the same file as one
	// of them, or as the running executable, is refused.
	ShimPaths []string

	Timeout time.Duration // per delivery (external binary or relay); 0 = 60 s
	Log     *slog.Logger  // nil = discard
}

// DefaultTimeout bounds one delivery when Options.Timeout is 0.
const DefaultTimeout = 60 * time.Second

// Exit status of sendmail that means "try again later" (sysexits.h).
const exTempFail = 75

// Target delivers events as mail through the local outbound path.
type Target struct {
	to           []string
	recipients   target.Recipients
	from         string
	author       string
	hostname     string
	localDomains []string
	relay        *smtp.Target
	localMailbox func(string) (target.Target, bool)
	sendmailPath string
	shimPaths    []string
	timeout      time.Duration
	log          *slog.Logger

	// userExists reports whether a local user name exists; tests replace it.
	userExists func(name string) bool
	now        func() time.Time

	// done remembers, per event ID, the local recipients already delivered
	// while another recipient still fails temporarily, so that the queue's
	// retry does not give them a second copy. In memory only: after a
	// restart a local recipient may get a duplicate, never a loss.
	mu   sync.Mutex
	done map[string]*doneSet
}

type doneSet struct {
	users map[string]bool
	since time.Time
}

// doneTTL drops forgotten entries (an event the queue gave up on).
const doneTTL = 7 * 24 * time.Hour

// New checks opt and returns the target.
func New(opt Options) (*Target, error) {
	t := &Target{
		from:         opt.From,
		author:       opt.Author,
		hostname:     opt.Hostname,
		localDomains: opt.LocalDomains,
		localMailbox: opt.LocalMailbox,
		recipients:   opt.Recipients,
		sendmailPath: opt.SendmailPath,
		shimPaths:    opt.ShimPaths,
		timeout:      opt.Timeout,
		log:          opt.Log,
		userExists:   systemUserExists,
		now:          time.Now,
		done:         map[string]*doneSet{},
	}
	if t.from == "" {
		t.from = "root"
	}
	if t.author == "" {
		t.author = smtp.DefaultAuthor
	}
	if t.timeout <= 0 {
		t.timeout = DefaultTimeout
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("sendmail: no hostname given and os.Hostname failed: %w", err)
		}
		t.hostname = h
	}
	if err := checkArg(t.from); err != nil {
		return nil, fmt.Errorf("sendmail: from-address: %w", err)
	}
	for _, r := range opt.To {
		r = strings.TrimSpace(r)
		if err := checkArg(r); err != nil {
			return nil, fmt.Errorf("sendmail: recipient: %w", err)
		}
		if !slices.Contains(t.to, r) {
			t.to = append(t.to, r)
		}
	}
	if t.sendmailPath != "" {
		if !filepath.IsAbs(t.sendmailPath) {
			return nil, fmt.Errorf("sendmail: sendmail-path %q is not absolute", t.sendmailPath)
		}
		if err := t.checkNotShim(); err != nil {
			return nil, err
		}
	}
	if opt.Relay != nil {
		r, err := smtp.New(smtp.Options{
			Server: opt.Relay.Host, Port: opt.Relay.Port, Mode: opt.Relay.Mode,
			Username: opt.Relay.Username, Password: opt.Relay.Password,
			From: t.from, Author: t.author, Hostname: t.hostname,
			Timeout: t.timeout, TLSConfig: opt.Relay.TLSConfig, Log: t.log,
		})
		if err != nil {
			return nil, fmt.Errorf("sendmail: relay: %w", err)
		}
		t.relay = r
	}
	return t, nil
}

// checkArg refuses what cannot be a command-line address: empty, starting
// with '-' (an option to sendmail), white space or control characters.
func checkArg(a string) error {
	if a == "" {
		return errors.New("empty address")
	}
	if a[0] == '-' {
		return fmt.Errorf("address %q starts with '-'", a)
	}
	for _, c := range a {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return fmt.Errorf("address %q contains white space, a control character or angle brackets", a)
		}
	}
	return nil
}

// checkNotShim refuses a SendmailPath that is herald itself. A path that
// does not exist (yet) passes: running it will fail instead.
func (t *Target) checkNotShim() error {
	st, err := os.Stat(t.sendmailPath)
	if err != nil {
		return nil
	}
	own := slices.Clone(t.shimPaths)
	if exe, err := os.Executable(); err == nil {
		own = append(own, exe)
	}
	for _, p := range own {
		if ps, err := os.Stat(p); err == nil && os.SameFile(st, ps) {
			return fmt.Errorf("sendmail: sendmail-path %s is herald's own sendmail (%s): that would loop", t.sendmailPath, p)
		}
	}
	return nil
}

func systemUserExists(name string) bool {
	_, err := user.Lookup(name)
	return err == nil
}

// String names the target's path.
func (t *Target) String() string {
	switch {
	case t.sendmailPath != "":
		return "sendmail via " + t.sendmailPath
	case t.relay != nil:
		return "sendmail via local mailboxes and " + t.relay.String()
	}
	return "sendmail via local mailboxes"
}

// isSystemMail reports whether ev is forwarded system mail.
func isSystemMail(ev *event.Event) bool { return smtp.IsSystemMail(ev) }

// Deliver sends ev to the configured recipients.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	to, off, err := target.ResolveRecipients(ctx, t.recipients, t.to, ev, checkArg)
	if err != nil {
		return err
	}
	if len(to) == 0 {
		if off {
			t.log.Info("sendmail: nobody to mail: the account's warnings are off", "event", ev.ID)
			return nil
		}
		// Proxmox's wording.
		return target.Permanent(errors.New("sendmail: no recipients provided for the mail, cannot send it"))
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	forward := isSystemMail(ev)
	var msg []byte
	if forward {
		msg = mailout.Forward(ev)
	} else {
		date := ev.Timestamp
		if date.IsZero() {
			date = t.now()
		}
		msg = mailout.Compose(ev, mailout.Header{From: t.from, Author: t.author, To: to, Hostname: t.hostname, Date: date})
	}
	if t.sendmailPath != "" {
		return t.runSendmail(ctx, forward, msg, to)
	}
	return t.deliverLocalAndRelay(ctx, ev, forward, msg, to)
}

// runSendmail pipes msg into the external MTA.
func (t *Target) runSendmail(ctx context.Context, forward bool, msg []byte, to []string) error {
	if err := t.checkNotShim(); err != nil {
		return target.Permanent(err)
	}
	args := []string{"-B", "8BITMIME"}
	if forward {
		// No DSN for forwarded system mail: a bounce would loop back to root.
		args = []string{"-N", "never"}
	} else {
		// A sendmail pipe takes Unix line ends.
		msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	}
	args = append(args, "-f", t.from, "--")
	args = append(args, to...)
	cmd := exec.CommandContext(ctx, t.sendmailPath, args...)
	cmd.Stdin = bytes.NewReader(msg)
	out := &tailBuffer{max: 2048}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	detail := strings.TrimSpace(out.String())
	if detail != "" {
		detail = ": " + detail
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return target.Temporary(fmt.Errorf("sendmail: %s: %w", t.sendmailPath, ctx.Err()), 0)
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// Killed (OOM killer, shutdown): nothing says the mail is bad.
			return target.Temporary(fmt.Errorf("sendmail: %s killed by signal %v%s", t.sendmailPath, ws.Signal(), detail), 0)
		}
		e := fmt.Errorf("sendmail: %s exited with status %d%s", t.sendmailPath, ee.ExitCode(), detail)
		if ee.ExitCode() == exTempFail {
			return target.Temporary(e, 0)
		}
		return target.Permanent(e)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return target.Permanent(fmt.Errorf("sendmail: cannot run sendmail-path: %w", err))
	}
	return target.Temporary(fmt.Errorf("sendmail: %s: %w", t.sendmailPath, err), 0)
}

// tailBuffer keeps the first max bytes of a command's output for the error.
type tailBuffer struct {
	max int
	bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// localUser returns the user name of a local recipient: a bare name, or
// name@ one of localhost, localhost.localdomain, our hostname, its first
// label or LocalDomains (aliases.LocalName). The name is folded to lower
// case, as Postfix's local(8) does.
func (t *Target) localUser(rcpt string) (string, bool) {
	return aliases.LocalName(rcpt, t.hostname, t.localDomains...)
}

// failure is one recipient that did not get the message.
type failure struct {
	rcpt string
	err  error
}

// deliverLocalAndRelay delivers local recipients into their mailboxes and the
// rest through the relay, and reports the outcome for all of them.
func (t *Target) deliverLocalAndRelay(ctx context.Context, ev *event.Event, forward bool, msg []byte, to []string) error {
	ds := &doneSet{users: map[string]bool{}, since: t.now()}
	if ev.ID != "" {
		t.mu.Lock()
		t.pruneLocked()
		if prev := t.done[ev.ID]; prev != nil {
			ds = prev
		} else {
			t.done[ev.ID] = ds
		}
		t.mu.Unlock()
	}

	var delivered, skipped []string
	var failures []failure
	var remote []string
	for _, rcpt := range to {
		name, local := t.localUser(rcpt)
		if !local {
			remote = append(remote, rcpt)
			continue
		}
		t.mu.Lock()
		already := ds.users[name]
		t.mu.Unlock()
		if already {
			skipped = append(skipped, rcpt)
			continue
		}
		if err := t.deliverLocal(ctx, ev, forward, msg, name); err != nil {
			failures = append(failures, failure{rcpt, err})
			continue
		}
		t.mu.Lock()
		ds.users[name] = true
		t.mu.Unlock()
		delivered = append(delivered, rcpt)
	}
	if len(remote) > 0 {
		if t.relay == nil {
			for _, r := range remote {
				failures = append(failures, failure{r, target.Permanent(fmt.Errorf("no relay configured for remote recipient %s", r))})
			}
		} else if err := t.relay.Send(ctx, smtp.Qualify(t.from, t.hostname), remote, msg); err != nil {
			failures = append(failures, failure{strings.Join(remote, ", "), err})
		} else {
			delivered = append(delivered, remote...)
		}
	}
	if len(skipped) > 0 {
		t.log.Debug("sendmail: local recipients already served by an earlier attempt", "event", ev.ID, "recipients", skipped)
	}
	if len(failures) == 0 {
		t.forget(ev.ID)
		return nil
	}
	temp := slices.ContainsFunc(failures, func(f failure) bool { return target.IsTemporary(f.err) })
	if !temp {
		t.forget(ev.ID)
	}
	var b strings.Builder
	b.WriteString("sendmail: ")
	for i, f := range failures {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", f.rcpt, f.err)
	}
	if done := slices.Concat(skipped, delivered); len(done) > 0 {
		fmt.Fprintf(&b, " (delivered to %s)", strings.Join(done, ", "))
	}
	e := &target.Error{Err: errors.New(b.String()), Temp: temp}
	// One failure: keep its server reply and retry hint.
	if len(failures) == 1 {
		e.Reply = target.Reply(failures[0].err)
		e.RetryAfter = target.RetryAfter(failures[0].err)
	}
	return e
}

// deliverLocal appends the message to user's mailbox.
func (t *Target) deliverLocal(ctx context.Context, ev *event.Event, forward bool, msg []byte, name string) error {
	if name != "root" && !t.userExists(name) {
		return target.Permanent(fmt.Errorf("no local user %q", name))
	}
	if t.localMailbox == nil {
		return target.Permanent(fmt.Errorf("no local mailbox configured for %q", name))
	}
	mb, ok := t.localMailbox(name)
	if !ok || mb == nil {
		return target.Permanent(fmt.Errorf("no local mailbox for user %q", name))
	}
	local := ev
	if !forward {
		// The mailbox stores the message as composed, so a local reader sees
		// what a remote one sees.
		cp := *ev
		cp.Mail = &event.Mail{Raw: msg, From: smtp.Qualify(t.from, t.hostname), Recipients: []string{name}}
		local = &cp
	}
	return mb.Deliver(ctx, local)
}

func (t *Target) forget(id string) {
	t.mu.Lock()
	delete(t.done, id)
	t.mu.Unlock()
}

func (t *Target) pruneLocked() {
	now := t.now()
	for id, ds := range t.done {
		if now.Sub(ds.since) > doneTTL {
			delete(t.done, id)
		}
	}
}

// IsLocal tells the delivery queue (target.Local) whether this target only
// fills local mailboxes: not when it runs an external MTA or has a relay,
// either of which may hang.
func (t *Target) IsLocal() bool { return t.relay == nil && t.sendmailPath == "" }

// Delivered tells the delivery queue after a crash whether an interrupted
// delivery reached its recipients (target.Verifier), so that mail-to-root
// and other sendmail targets that fill local mailboxes get exactly one
// copy, as an mbox target does. Each local recipient's mailbox is asked
// whether it holds the event (its X-Herald-Event header); the ones that do
// are remembered as served, so the attempt that follows skips them. Only
// when every recipient is local and served is the delivery done. Recipients
// behind a relay or an external MTA cannot be asked: that is an error, and
// the queue delivers again (at least once) to those alone.
func (t *Target) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	if t.sendmailPath != "" {
		return false, fmt.Errorf("sendmail: %s cannot be asked what it delivered", t.sendmailPath)
	}
	if ev.ID == "" {
		return false, nil
	}
	to, _, err := target.ResolveRecipients(ctx, t.recipients, t.to, ev, checkArg)
	if err != nil {
		return false, fmt.Errorf("sendmail: recipients: %w", err)
	}
	if len(to) == 0 {
		return false, nil
	}
	all, remote := true, 0
	var served []string
	for _, rcpt := range to {
		name, local := t.localUser(rcpt)
		if !local {
			all = false
			remote++
			continue
		}
		var v target.Verifier
		if t.localMailbox != nil {
			if mb, ok := t.localMailbox(name); ok && mb != nil {
				v, _ = mb.(target.Verifier)
			}
		}
		if v == nil {
			return false, fmt.Errorf("sendmail: the mailbox of %s cannot be checked", name)
		}
		ok, err := v.Delivered(ctx, ev)
		if err != nil {
			return false, fmt.Errorf("sendmail: mailbox of %s: %w", name, err)
		}
		if !ok {
			all = false
			continue
		}
		served = append(served, name)
	}
	if len(served) > 0 {
		t.mu.Lock()
		t.pruneLocked()
		ds := t.done[ev.ID]
		if ds == nil {
			ds = &doneSet{users: map[string]bool{}, since: t.now()}
			t.done[ev.ID] = ds
		}
		for _, n := range served {
			ds.users[n] = true
		}
		t.mu.Unlock()
	}
	if remote > 0 {
		return false, fmt.Errorf("sendmail: %d recipient(s) behind the relay cannot be checked (local mailboxes that have it are skipped)", remote)
	}
	return all, nil
}
