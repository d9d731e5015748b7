// Package build makes herald's targets from the loaded configuration: one
// target per section of notifications.cfg (and one per member of an
// alertmanager cluster), the built-in relay target of herald.cfg, each
// wrapped so that it gets the titles and bodies of the templates. Secrets
// stay config.Secret all the way into the target, which reveals them only
// where it builds a request. The daemon, `herald check`, `herald test` and
// `herald explain` build through here, so they agree on what a section
// makes.
package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailbox"
	"herald/internal/mailroute"
	"herald/internal/recipients"
	"herald/internal/render"
	"herald/internal/target"
	"herald/internal/target/exec"
	"herald/internal/target/file"
	"herald/internal/target/gotify"
	"herald/internal/target/journal"
	"herald/internal/target/mbox"
	"herald/internal/target/ntfy"
	"herald/internal/target/sendmail"
	"herald/internal/target/smtp"
	"herald/internal/target/webhook"
)

// TemplatesDir holds the user's title/body template overrides, next to
// the configuration (render.New documents the names).
const TemplatesDir = "templates"

// UsersFile is where mailto-user addresses are looked up (Proxmox user.cfg
// format, PVE or PBS style), inside the config directory.
const UsersFile = "user.cfg"

// Input is the configuration the targets are built from.
type Input struct {
	Notify *config.Config
	// Daemon is herald.cfg, its mail name resolved.
	Daemon *config.Daemon
	// Datacenter is Proxmox's node settings (the proxy, email_from).
	Datacenter config.Datacenter
	// ShimPaths are herald's own sendmail shims (the loop check).
	ShimPaths []string
	ConfigDir string
	StateDir  string
	// Embedded is herald's embedded default: local mailboxes live in
	// STATE/mail.
	Embedded bool
}

// localDomains are the domains mail is delivered to on this host.
func (in Input) localDomains() mailroute.Local {
	return mailroute.NewLocal(in.Daemon.Hostname, in.Daemon.MailName)
}

// Env is what the running daemon lends the targets it builds; the zero
// value is for `herald check` and `herald test`, which have no queue.
type Env struct {
	// StateDir is STATE, for targets that keep state (alertmanager's
	// heartbeat alerts); "" when not the daemon.
	StateDir string
	// Enqueue durably queues more deliveries of an event that is in the
	// queue (the members an alertmanager delivery still owes).
	Enqueue func(ev *event.Event, targets []string) error
}

// Targets makes one target per configured section (and one per member of
// an alertmanager target, for what the queue retries to it). One section
// never stops the others: a target the configuration marks broken, or that
// cannot be built (a value that cannot work), becomes a broken target
// (BrokenReason), so matchers still route to it and each delivery fails
// with the reason (a dead letter and a delivery-failed event), and a
// warning naming its FILE:LINE says so (docs/proxmox-compat.md). The error
// is for what every target shares (the users file, the templates, the
// aliases, the relay settings of herald.cfg).
func Targets(in Input, log *slog.Logger, env Env) (map[string]target.Target, config.Diagnostics, error) {
	b, err := newBuilder(in, log)
	if err != nil {
		return nil, nil, err
	}
	logAliasProblems(b.aliasProblems, log)
	b.env = env
	out := make(map[string]target.Target, len(in.Notify.Targets))
	var warns config.Diagnostics
	for _, sec := range in.Notify.Targets {
		if reason, ok := in.Notify.BrokenReason(sec.Name); ok {
			out[sec.Name] = brokenTarget{name: sec.Name, reason: reason}
			continue
		}
		t, err := b.buildRendered(sec)
		if err != nil {
			reason := fmt.Sprintf("%s target %s: %v", sec.Type, sec.Name, err)
			warns = append(warns, config.Diagnostic{File: sec.File, Line: sec.Line, Warning: true,
				Msg: reason + ": the target is disabled (its deliveries fail with this reason)"})
			out[sec.Name] = brokenTarget{name: sec.Name, reason: reason}
			continue
		}
		out[sec.Name] = t
		for name, m := range memberTargets(t) {
			out[name] = rendered(m, sec.Type, b.rnd)
		}
	}
	if err := b.addRelay(out); err != nil {
		return nil, nil, err
	}
	return out, warns, nil
}

// Check builds every configured target without sending anything, so that
// `herald check` reports what the daemon would refuse at start-up (the
// error: what every target shares, aliases included) and the targets it
// would disable (the warnings). The aliases file's warnings are added to
// in.Notify's.
func Check(in Input) (config.Diagnostics, error) {
	_, warns, err := Targets(in, slog.New(slog.DiscardHandler), Env{})
	if err != nil {
		return nil, err
	}
	if ds := aliasDiagnostics(in); len(ds) > 0 {
		return warns, ds
	}
	return warns, nil
}

// Target builds one named target, disabled or not (`herald test` sends to
// disabled targets too, as Proxmox does).
func Target(in Input, name string) (target.Target, error) {
	sec := in.Notify.Target(name)
	if sec == nil {
		return nil, fmt.Errorf("no target named %q", name)
	}
	if reason, ok := in.Notify.BrokenReason(name); ok {
		return nil, fmt.Errorf("target %s is disabled by a configuration problem: %s", name, reason)
	}
	b, err := newBuilder(in, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return b.buildRendered(sec)
}

// brokenTarget stands for a target whose configuration cannot work: every
// delivery to it fails for good with the reason, so nothing is lost
// silently (the dead letter and its delivery-failed event say why).
type brokenTarget struct {
	name, reason string
}

func (t brokenTarget) Deliver(context.Context, *event.Event) error {
	return target.Permanent(fmt.Errorf("target %s is disabled by a configuration problem: %s", t.name, t.reason))
}

// IgnoresMail: it reads nothing (target.MailBlind).
func (brokenTarget) IgnoresMail() bool { return true }

// IsLocal: it never waits for anything (target.Local).
func (brokenTarget) IsLocal() bool { return true }

// BrokenReason reports whether t stands for a target the configuration
// disabled, and why.
func BrokenReason(t target.Target) (string, bool) {
	b, ok := t.(brokenTarget)
	return b.reason, ok
}

type builder struct {
	in        Input
	log       *slog.Logger
	users     *recipients.Users
	rnd       *render.Renderer
	shimPaths []string
	// lookup resolves mail targets' recipients per delivery (recipients.go).
	lookup        *recipients.Lookup
	aliasProblems config.Diagnostics
	env           Env
	relaySettings *sendmail.Relay // herald.cfg's relay; nil when none
}

// newBuilder loads what every target build needs: the users file for
// mailto-user and the title/body templates.
func newBuilder(in Input, log *slog.Logger) (builder, error) {
	users, err := recipients.LoadUsers(filepath.Join(in.ConfigDir, UsersFile))
	if err != nil {
		return builder{}, config.Diagnostics{{File: filepath.Join(in.ConfigDir, UsersFile), Msg: err.Error()}}
	}
	rnd, err := render.New(filepath.Join(in.ConfigDir, TemplatesDir))
	if err != nil {
		return builder{}, TemplateDiag(err)
	}
	lookup, aliasProblems, err := newLookup(in, users, log)
	if err != nil {
		return builder{}, err
	}
	b := builder{in: in, log: log, users: users, rnd: rnd, shimPaths: in.ShimPaths,
		lookup: lookup, aliasProblems: aliasProblems}
	if b.relaySettings, err = relaySettings(in.Daemon); err != nil {
		d := config.Diagnostic{File: in.Daemon.File, Msg: err.Error()}
		return builder{}, config.Diagnostics{d}
	}
	return b, nil
}

// buildRendered builds one target, wrapped so it gets rendered titles and
// bodies.
func (b builder) buildRendered(sec *config.Section) (target.Target, error) {
	t, err := b.build(sec)
	if err != nil {
		return nil, err
	}
	return rendered(t, sec.Type, b.rnd), nil
}

func (b builder) hostname() string { return b.in.Daemon.Hostname }

// mailName is the name for HELO and for qualifying bare addresses.
func (b builder) mailName() string { return b.in.Daemon.MailName }

// localMailbox returns the mailbox target of a local user: MAIL-DIR/USER,
// where mail-dir (herald.cfg) defaults to Debian's /var/mail, and the
// embedded default keeps STATE/mail. Outside the state directory a missing
// mailbox is created owned by its user, group mail, 0660, by the privileged
// helper (internal/mailbox), so that `mail` works for every user; the daemon
// itself needs group mail to append (herald.service's SupplementaryGroups).
func (b builder) localMailbox(user string) (target.Target, bool) {
	if user == "" || strings.ContainsAny(user, "/\x00") || user == "." || user == ".." {
		return nil, false
	}
	state := filepath.Join(b.in.StateDir, "mail")
	dir := b.in.Daemon.MailDir
	switch {
	case b.in.Embedded:
		dir = state
	case dir == "":
		dir = mailbox.DefaultDir
	}
	mb := mbox.New(filepath.Join(dir, user), b.hostname())
	if dir != state {
		helper := b.in.Daemon.MailboxHelper
		mb.CreateWith(func() error { return mailbox.Creator{Dir: dir, Socket: helper}.Create(user) })
	}
	return mb, true
}

func (b builder) recipients(r config.MailRecipients) []string {
	return recipients.Recipients(r.Mailto, r.MailtoUser, b.users, b.log)
}

// build makes the target of one section from its typed form
// (config.Section.Target).
func (b builder) build(sec *config.Section) (target.Target, error) {
	spec, err := sec.Target()
	if err != nil {
		return nil, err
	}
	switch c := spec.(type) {
	case config.FileTarget:
		return file.New(c.Path), nil
	case config.MboxTarget:
		return mbox.New(c.Path, b.hostname()), nil
	case config.JournalTarget:
		return journal.New(journal.Options{Identifier: c.Identifier}), nil
	case config.ExecTarget:
		return exec.New(exec.Options{Command: c.Command, Timeout: c.Timeout})
	case config.GotifyTarget:
		return gotify.New(gotify.Options{Server: c.Server, Token: c.Token, Proxy: b.in.Datacenter.HTTPProxy}), nil
	case config.NtfyTarget:
		return ntfy.New(ntfy.Options{Server: c.Server, Topic: c.Topic, Token: c.Token,
			Priority: c.Priority, Tags: c.Tags})
	case config.WebhookTarget:
		var hs []webhook.Header
		for _, h := range c.Headers {
			hs = append(hs, webhook.Header{Name: h.Name, Value: h.Value})
		}
		return webhook.New(webhook.Options{URL: c.URL, Method: c.Method, Headers: hs,
			Body: c.Body, Secrets: c.Secrets, Proxy: b.in.Datacenter.HTTPProxy})
	case config.AlertmanagerTarget:
		return b.alertmanager(sec.Name, c)
	case config.SMTPTarget:
		from, author, err := b.fromAndAuthor(c.FromAddress, c.Author, "")
		if err != nil {
			return nil, err
		}
		return smtp.New(smtp.Options{Server: c.Server, Port: c.Port, Mode: c.Mode,
			Username: c.Username, Password: c.Password, From: from,
			Author: author, To: b.recipients(c.Recipients), Hostname: b.mailName(),
			Recipients: b.recipientsOf(c.Recipients)})
	case config.SendmailTarget:
		// Without a from-address: root@MAILNAME (Proxmox's root@HOSTNAME,
		// with the name Debian's MTAs use).
		from, author, err := b.fromAndAuthor(c.FromAddress, c.Author, "root@"+b.mailName())
		if err != nil {
			return nil, err
		}
		return sendmail.New(sendmail.Options{To: b.recipients(c.Recipients), From: from,
			Author: author, Hostname: b.mailName(), LocalDomains: b.in.localDomains().Names, Relay: b.relaySettings,
			LocalMailbox: b.localMailbox, SendmailPath: c.SendmailPath,
			ShimPaths: b.shimPaths, Log: b.log, Recipients: b.recipientsOf(c.Recipients)})
	}
	return nil, fmt.Errorf("unsupported target type %q", sec.Type)
}

// fromAndAuthor returns a mail target's envelope sender and author. The
// from-address may carry a display name, as Proxmox accepts
// ("Proxmox VE <pve@example.com>"): the address is the sender and the name
// the author unless author is set. Without a from-address: datacenter.cfg's
// email_from when herald shares Proxmox's files, else def (Proxmox's docs:
// root@MAILNAME).
func (b builder) fromAndAuthor(v, author, def string) (from, auth string, err error) {
	if v == "" {
		v = b.in.Datacenter.EmailFrom
	}
	if v == "" {
		return def, author, nil
	}
	name, addr, err := config.ParseFromAddress(v)
	if err != nil {
		return "", "", fmt.Errorf("from-address %w", err)
	}
	if author == "" {
		author = name
	}
	return addr, author, nil
}

// TemplateDiag turns a template error into a diagnostic naming its file
// and line.
func TemplateDiag(err error) error {
	var re *render.Error
	if errors.As(err, &re) {
		return config.Diagnostics{{File: re.File, Line: re.Line, Msg: fmt.Sprintf("column %d: %s", re.Col, re.Msg)}}
	}
	return config.Diagnostics{{Msg: "templates: " + err.Error()}}
}
