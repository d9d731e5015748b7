package sendmail

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/aliases"
	"herald/internal/event"
	"herald/internal/mailout"
	"herald/internal/target"
	"herald/internal/target/mbox"
	"herald/internal/target/smtp/smtptest"
)

const hostname = "pve1.example.org"

func testEvent() *event.Event {
	return &event.Event{
		ID:        "3f2c7d1e-0b6a-4d8e-9a55-1c2b3d4e5f60",
		Timestamp: time.Date(2025, 5, 23, 11, 59, 32, 0, time.UTC),
		Severity:  event.Warning,
		Title:     "package updates available",
		Body:      "3 updates\nFrom the mirror\n",
		Fields:    map[string]string{"type": "package-updates", "hostname": "pve1"},
	}
}

const systemRaw = "From root@pve1  Fri May 23 11:59:32 2025\n" +
	"Return-Path: <root@pve1.example.org>\n" +
	"Delivered-To: root@pve1.example.org\n" +
	"Subject: Cron <root@pve1> run-parts\n" +
	"From: root (Cron Daemon) <root@pve1.example.org>\n" +
	"To: root\n" +
	"\n" +
	"job output\n" +
	"From here on\n"

func systemEvent() *event.Event {
	ev := testEvent()
	ev.ID = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
	ev.Severity = event.Unknown
	ev.Title = "Cron <root@pve1> run-parts"
	ev.Body = "job output\nFrom here on\n"
	ev.Fields = map[string]string{"type": "system-mail", "hostname": "pve1"}
	ev.Mail = &event.Mail{Raw: []byte(systemRaw), From: "root@pve1.example.org", Recipients: []string{"root"}}
	return ev
}

// mailboxes hands out mbox targets under dir, one per user, and can be told
// to fail a user's first deliveries temporarily.
type mailboxes struct {
	dir      string
	mu       sync.Mutex
	failures map[string]int // user -> deliveries still to fail
}

func newMailboxes(t *testing.T) *mailboxes {
	return &mailboxes{dir: t.TempDir(), failures: map[string]int{}}
}

func (m *mailboxes) lookup(user string) (target.Target, bool) {
	if user == "nomailbox" {
		return nil, false
	}
	return &flaky{m: m, user: user, inner: mbox.New(filepath.Join(m.dir, user), hostname)}, true
}

type flaky struct {
	m     *mailboxes
	user  string
	inner *mbox.Target
}

func (f *flaky) Deliver(ctx context.Context, ev *event.Event) error {
	f.m.mu.Lock()
	fail := f.m.failures[f.user] > 0
	if fail {
		f.m.failures[f.user]--
	}
	f.m.mu.Unlock()
	if fail {
		return target.Temporary(errors.New("mailbox busy"), 0)
	}
	return f.inner.Deliver(ctx, ev)
}

// messages splits a user's mailbox into its messages (mboxrd, as the mbox
// target writes it).
func (m *mailboxes) messages(t *testing.T, user string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.dir, user))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, part := range strings.Split("\n"+string(b), "\n\nFrom ") {
		if part = strings.TrimPrefix(part, "\n"); part != "" {
			msgs = append(msgs, part)
		}
	}
	return msgs
}

func newTarget(t *testing.T, mb *mailboxes, mod func(*Options)) *Target {
	t.Helper()
	opt := Options{To: []string{"root"}, Hostname: hostname, Author: "Proxmox VE", Timeout: 10 * time.Second}
	if mb != nil {
		opt.LocalMailbox = mb.lookup
	}
	if mod != nil {
		mod(&opt)
	}
	tg, err := New(opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tg.userExists = func(name string) bool { return name == "alice" || name == "nomailbox" }
	return tg
}

func deliver(t *testing.T, tg *Target, ev *event.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return tg.Deliver(ctx, ev)
}

// body returns the message of an mbox entry: everything after the From_ line.
func body(t *testing.T, entry string) *mail.Message {
	t.Helper()
	_, rest, _ := strings.Cut(entry, "\n")
	m, err := mail.ReadMessage(strings.NewReader(rest))
	if err != nil {
		t.Fatalf("mailbox message does not parse: %v\n%s", err, entry)
	}
	return m
}

func TestLocalDelivery(t *testing.T) {
	mb := newMailboxes(t)
	tg := newTarget(t, mb, func(o *Options) {
		o.To = []string{"root", "root@localhost", "root@pve1", "alice@" + hostname, "ALICE@PVE1.EXAMPLE.ORG."}
	})
	if err := deliver(t, tg, testEvent()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	root := mb.messages(t, "root")
	if len(root) != 1 {
		t.Fatalf("root's mailbox has %d messages, want 1 (three names for one user):\n%s", len(root), root)
	}
	m := body(t, root[0])
	if m.Header.Get("From") != "Proxmox VE <root@pve1.example.org>" || m.Header.Get("Subject") != "package updates available" ||
		m.Header.Get(mbox.EventHeader) != testEvent().ID || !strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("root's message headers: %v", m.Header)
	}
	if got := m.Header.Get("To"); !strings.Contains(got, "root@pve1.example.org") {
		t.Errorf("To = %q", got)
	}
	if n := len(mb.messages(t, "alice")); n != 1 {
		t.Errorf("alice's mailbox has %d messages, want 1", n)
	}
}

func TestSystemMailForwardedAsIs(t *testing.T) {
	mb := newMailboxes(t)
	srv := smtptest.Start(t, smtptest.Config{})
	tg := newTarget(t, mb, func(o *Options) {
		o.To = []string{"root", "ops@example.org"}
		o.Relay = &Relay{Host: srv.Host, Port: srv.Port, Mode: "insecure"}
	})
	ev := systemEvent()
	if err := deliver(t, tg, ev); err != nil {
		t.Fatal(err)
	}
	want := string(mailout.Forward(ev))
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("relay got %d messages", len(msgs))
	}
	if got := strings.ReplaceAll(string(msgs[0].Data), "\r\n", "\n"); got != want {
		t.Errorf("relay got\n%q\nwant the original\n%q", got, want)
	}
	if msgs[0].From != "root@pve1.example.org" || strings.Join(msgs[0].To, ",") != "ops@example.org" {
		t.Errorf("relay envelope %s -> %v", msgs[0].From, msgs[0].To)
	}
	root := mb.messages(t, "root")
	if len(root) != 1 {
		t.Fatalf("root has %d messages", len(root))
	}
	m := body(t, root[0])
	if m.Header.Get("Delivered-To") != "root@pve1.example.org" || m.Header.Get("From") != "root (Cron Daemon) <root@pve1.example.org>" {
		t.Errorf("local copy is not the original: %v", m.Header)
	}
	if !strings.Contains(root[0], "\n>From here on\n") {
		t.Errorf("local copy body not the original (mboxrd-escaped):\n%s", root[0])
	}
}

// A temporary failure on one path must not give the recipients that were
// served a second copy when the queue retries.
func TestRetryDoesNotDuplicate(t *testing.T) {
	t.Run("relay-4xx", func(t *testing.T) {
		mb := newMailboxes(t)
		srv := smtptest.Start(t, smtptest.Config{Rcpt: smtptest.TempFailOnce("ops@example.org")})
		tg := newTarget(t, mb, func(o *Options) {
			o.To = []string{"root", "ops@example.org"}
			o.Relay = &Relay{Host: srv.Host, Port: srv.Port, Mode: "insecure"}
		})
		err := deliver(t, tg, testEvent())
		if !target.IsTemporary(err) || !strings.Contains(err.Error(), "(delivered to root)") || target.Reply(err) != "451 4.3.0 try again later" {
			t.Fatalf("first attempt: %v (reply %q)", err, target.Reply(err))
		}
		if err := deliver(t, tg, testEvent()); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if n := len(mb.messages(t, "root")); n != 1 {
			t.Errorf("root got %d messages over two attempts, want 1", n)
		}
		if n := len(srv.Messages()); n != 1 {
			t.Errorf("relay got %d messages, want 1", n)
		}
		if len(tg.done) != 0 {
			t.Errorf("done-set not cleared after success: %v", tg.done)
		}
	})
	t.Run("mailbox-busy", func(t *testing.T) {
		mb := newMailboxes(t)
		mb.failures["alice"] = 1
		tg := newTarget(t, mb, func(o *Options) { o.To = []string{"root", "alice"} })
		err := deliver(t, tg, testEvent())
		if !target.IsTemporary(err) || !strings.Contains(err.Error(), "alice: mailbox busy") {
			t.Fatalf("first attempt: %v", err)
		}
		if err := deliver(t, tg, testEvent()); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if r, a := len(mb.messages(t, "root")), len(mb.messages(t, "alice")); r != 1 || a != 1 {
			t.Errorf("root %d, alice %d messages; want 1 each", r, a)
		}
	})
}

func TestLocalFailures(t *testing.T) {
	tests := []struct {
		name    string
		to      []string
		noMB    bool
		wantErr string
	}{
		{"unknown-user", []string{"ghost"}, false, `no local user "ghost"`},
		{"unknown-user-at-host", []string{"ghost@localhost"}, false, `no local user "ghost"`},
		{"no-mailbox", []string{"nomailbox"}, false, `no local mailbox for user "nomailbox"`},
		{"no-local-delivery", []string{"root"}, true, `no local mailbox configured for "root"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mb := newMailboxes(t)
			if tc.noMB {
				mb = nil
			}
			tg := newTarget(t, mb, func(o *Options) { o.To = tc.to })
			err := deliver(t, tg, testEvent())
			if err == nil || target.IsTemporary(err) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want a permanent error containing %q", err, tc.wantErr)
			}
		})
	}
}

// fakeSendmail writes a script that records its argv and stdin in dir and
// then runs tail (shell code).
func fakeSendmail(t *testing.T, tail string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "sendmail")
	script := fmt.Sprintf("#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\n' \"$a\"; done > %s/argv\ncat > %s/stdin\n%s\n", dir, dir, tail)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExternalSendmail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ev       *event.Event
		wantArgv []string
	}{
		{"composed", testEvent(), []string{"-B", "8BITMIME", "-f", "root", "--", "root", "ops@example.org"}},
		{"forwarded", systemEvent(), []string{"-N", "never", "-f", "root", "--", "root", "ops@example.org"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, dir := fakeSendmail(t, "exit 0")
			tg := newTarget(t, nil, func(o *Options) {
				o.To = []string{"root", "ops@example.org"}
				o.SendmailPath = path
			})
			if err := deliver(t, tg, tc.ev); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(dir, "argv")); got != strings.Join(tc.wantArgv, "\n")+"\n" {
				t.Errorf("argv:\n%s\nwant:\n%s", got, strings.Join(tc.wantArgv, "\n"))
			}
			stdin := readFile(t, filepath.Join(dir, "stdin"))
			if tc.ev.Mail != nil {
				if stdin != string(mailout.Forward(tc.ev)) {
					t.Errorf("forwarded stdin changed:\n%q", stdin)
				}
				return
			}
			if strings.Contains(stdin, "\r") {
				t.Errorf("composed stdin has CR line ends")
			}
			m, err := mail.ReadMessage(strings.NewReader(stdin))
			if err != nil {
				t.Fatalf("stdin does not parse: %v", err)
			}
			if m.Header.Get("From") != "Proxmox VE <root@pve1.example.org>" || m.Header.Get("To") != "root@pve1.example.org, ops@example.org" {
				t.Errorf("headers %v", m.Header)
			}
		})
	}
}

func TestExternalSendmailFailures(t *testing.T) {
	tests := []struct {
		name     string
		tail     string
		timeout  time.Duration
		wantTemp bool
		wantErr  string
	}{
		{"tempfail", "echo 'queue full' >&2; exit 75", 0, true, "exited with status 75: queue full"},
		{"permfail", "echo 'bad address' >&2; exit 67", 0, false, "exited with status 67: bad address"},
		{"signal", "kill -9 $$", 0, true, "killed by signal"},
		{"timeout", "exec sleep 30", 300 * time.Millisecond, true, "deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := fakeSendmail(t, tc.tail)
			tg := newTarget(t, nil, func(o *Options) {
				o.SendmailPath = path
				o.Timeout = tc.timeout
			})
			start := time.Now()
			err := deliver(t, tg, testEvent())
			if took := time.Since(start); took > 8*time.Second {
				t.Errorf("Deliver took %v", took)
			}
			if err == nil || target.IsTemporary(err) != tc.wantTemp || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v (temporary %v), want temporary=%v containing %q", err, target.IsTemporary(err), tc.wantTemp, tc.wantErr)
			}
		})
	}
	t.Run("missing-binary", func(t *testing.T) {
		tg := newTarget(t, nil, func(o *Options) { o.SendmailPath = filepath.Join(t.TempDir(), "nope") })
		err := deliver(t, tg, testEvent())
		if err == nil || target.IsTemporary(err) || !strings.Contains(err.Error(), "cannot run sendmail-path") {
			t.Fatalf("got %v, want a permanent error", err)
		}
	})
}

func TestNew(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	self := filepath.Join(dir, "sendmail-self")
	if err := os.Symlink(exe, self); err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(dir, "herald-sendmail")
	if err := os.WriteFile(shim, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	shimLink := filepath.Join(dir, "sendmail")
	if err := os.Symlink(shim, shimLink); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opt     Options
		wantErr string
	}{
		{"self", Options{SendmailPath: self, Hostname: "h"}, "herald's own sendmail"},
		{"shim", Options{SendmailPath: shimLink, ShimPaths: []string{shim}, Hostname: "h"}, "that would loop"},
		{"relative", Options{SendmailPath: "sendmail", Hostname: "h"}, "not absolute"},
		{"option-recipient", Options{To: []string{"-oQ/tmp/x"}, Hostname: "h"}, "starts with '-'"},
		{"space-recipient", Options{To: []string{"a b"}, Hostname: "h"}, "white space"},
		{"option-from", Options{From: "-bi", Hostname: "h"}, "from-address"},
		{"relay-user-no-password", Options{Relay: &Relay{Host: "relay", Username: "u"}, Hostname: "h"}, "no password"},
		{"relay-bad-mode", Options{Relay: &Relay{Host: "relay", Mode: "ssl"}, Hostname: "h"}, "not one of"},
		{"ok-missing-path", Options{SendmailPath: filepath.Join(dir, "later"), Hostname: "h"}, ""},
		{"ok-defaults", Options{To: []string{"root", "root"}, Hostname: "h"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := New(tc.opt)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tg.from != "root" || tg.author != "herald" || tg.timeout != DefaultTimeout || len(tg.to) > 1 {
					t.Errorf("defaults: from %q author %q timeout %v to %v", tg.from, tg.author, tg.timeout, tg.to)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNoRecipients(t *testing.T) {
	tg := newTarget(t, newMailboxes(t), func(o *Options) { o.To = nil })
	err := deliver(t, tg, testEvent())
	if err == nil || target.IsTemporary(err) || !strings.Contains(err.Error(), "no recipients") {
		t.Fatalf("got %v", err)
	}
}

func TestLocalUser(t *testing.T) {
	tg := newTarget(t, nil, nil)
	for rcpt, want := range map[string]string{
		"root": "root", "root@localhost": "root", "alice@pve1": "alice", "alice@PVE1.example.org": "alice",
		"bob@localhost.localdomain": "bob", "Root": "root", "ops@example.org": "", "@localhost": "", "a@pve1.example.org.evil": "",
	} {
		got, ok := aliases.LocalName(rcpt, tg.hostname)
		if ok != (want != "") || got != want {
			t.Errorf("LocalName(%q) = %q, %v; want %q", rcpt, got, ok, want)
		}
	}
	// With a mail name that is not the host name (/etc/mailname), the
	// host's own names stay local.
	tg = newTarget(t, nil, func(o *Options) {
		o.Hostname = "mx.example.net"
		o.LocalDomains = []string{"pve1", "pve1.example.org"}
	})
	for rcpt, want := range map[string]string{
		"root@pve1": "root", "alice@pve1.example.org": "alice", "bob@mx.example.net": "bob", "carol@mx": "carol", "ops@example.net": "",
	} {
		got, ok := tg.localUser(rcpt)
		if ok != (want != "") || got != want {
			t.Errorf("with local domains: localUser(%q) = %q, %v; want %q", rcpt, got, ok, want)
		}
	}
	if !systemUserExists("root") || systemUserExists("no-such-user-for-herald-tests") {
		t.Errorf("systemUserExists does not consult the user database")
	}
}

// Delivered passes the mailbox's answer on (mbox.Target is a Verifier).
func (f *flaky) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	return f.inner.Delivered(ctx, ev)
}

// TestDeliveredAfterCrash: a delivery into local mailboxes interrupted by a
// crash is verified like an mbox delivery: a new process (a fresh target)
// finds it done, and one that reached some mailboxes only serves the rest.
func TestDeliveredAfterCrash(t *testing.T) {
	ctx := context.Background()
	mb := newMailboxes(t)
	opts := func(o *Options) { o.To = []string{"root", "alice"} }
	if err := deliver(t, newTarget(t, mb, opts), testEvent()); err != nil {
		t.Fatal(err)
	}
	// After the crash: a new target instance knows nothing in memory.
	tg := newTarget(t, mb, opts)
	if ok, err := tg.Delivered(ctx, testEvent()); err != nil || !ok {
		t.Fatalf("Delivered after a complete delivery = %v, %v; want true", ok, err)
	}
	other := testEvent()
	other.ID = "another-event"
	if ok, err := tg.Delivered(ctx, other); err != nil || ok {
		t.Fatalf("Delivered of an event never delivered = %v, %v; want false", ok, err)
	}

	// Half done: root has it, alice's mailbox failed before the crash.
	mb2 := newMailboxes(t)
	mb2.failures["alice"] = 1
	if err := deliver(t, newTarget(t, mb2, opts), testEvent()); !target.IsTemporary(err) {
		t.Fatalf("first attempt: %v", err)
	}
	tg2 := newTarget(t, mb2, opts)
	if ok, err := tg2.Delivered(ctx, testEvent()); err != nil || ok {
		t.Fatalf("Delivered with alice unserved = %v, %v; want false", ok, err)
	}
	if err := deliver(t, tg2, testEvent()); err != nil {
		t.Fatal(err)
	}
	if r, a := len(mb2.messages(t, "root")), len(mb2.messages(t, "alice")); r != 1 || a != 1 {
		t.Errorf("after recovery root has %d, alice %d messages; want 1 each", r, a)
	}

	// Behind a relay: cannot be asked; the local part is still skipped.
	srv := smtptest.Start(t, smtptest.Config{})
	mb3 := newMailboxes(t)
	relayed := func(o *Options) {
		o.To = []string{"root", "ops@example.org"}
		o.Relay = &Relay{Host: srv.Host, Port: srv.Port, Mode: "insecure"}
	}
	if err := deliver(t, newTarget(t, mb3, relayed), testEvent()); err != nil {
		t.Fatal(err)
	}
	tg3 := newTarget(t, mb3, relayed)
	if ok, err := tg3.Delivered(ctx, testEvent()); err == nil || ok {
		t.Fatalf("Delivered with a relayed recipient = %v, %v; want an error", ok, err)
	}
	if err := deliver(t, tg3, testEvent()); err != nil {
		t.Fatal(err)
	}
	if n := len(mb3.messages(t, "root")); n != 1 {
		t.Errorf("root got %d messages, want 1 (the relay alone is at least once)", n)
	}
}

// TestPerEventRecipients: a Recipients function replaces the static list
// per event; its errors keep their class; an account whose warnings are off
// is no error and mails nobody.
func TestPerEventRecipients(t *testing.T) {
	mb := newMailboxes(t)
	var answer struct {
		to  []string
		off bool
		err error
	}
	tg := newTarget(t, mb, func(o *Options) {
		o.Recipients = func(_ context.Context, ev *event.Event) ([]string, bool, error) {
			return answer.to, answer.off, answer.err
		}
	})
	answer.to = []string{"alice@localhost"}
	if err := deliver(t, tg, testEvent()); err != nil {
		t.Fatal(err)
	}
	if got := mb.messages(t, "alice"); len(got) != 1 || !strings.Contains(got[0], "package updates available") {
		t.Fatalf("alice's mailbox: %q", got)
	}
	if _, err := os.Stat(filepath.Join(mb.dir, "root")); err == nil {
		t.Fatal("the static recipient root was mailed although Recipients replaced the list")
	}
	answer.to, answer.off = nil, true
	if err := deliver(t, tg, testEvent()); err != nil {
		t.Fatalf("warnings off: %v, want no error", err)
	}
	answer.off = false
	answer.err = &classified{temp: true, msg: "ldap stoney: no server answered"}
	err := deliver(t, tg, testEvent())
	if !target.IsTemporary(err) || !strings.Contains(err.Error(), "recipients: ldap stoney: no server answered") {
		t.Fatalf("directory down: %v, want a temporary recipients error", err)
	}
	answer.err = &classified{msg: `person "p-gone" is not in the directory`}
	if err := deliver(t, tg, testEvent()); err == nil || target.IsTemporary(err) {
		t.Fatalf("missing person: %v, want a permanent error", err)
	}
	answer.err, answer.to = nil, []string{"-oQ/tmp/evil"}
	if err := deliver(t, tg, testEvent()); err == nil || target.IsTemporary(err) {
		t.Fatalf("option-like recipient from a directory: %v, want a permanent error", err)
	}
}

type classified struct {
	temp bool
	msg  string
}

func (c *classified) Error() string   { return c.msg }
func (c *classified) Temporary() bool { return c.temp }
