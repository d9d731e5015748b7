package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailbox"
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

// templatesDir holds the user's title/body template overrides, next to
// the configuration (render.New documents the names).
const templatesDir = "templates"

// usersFile is where mailto-user addresses are looked up (Proxmox user.cfg
// format, PVE or PBS style), inside the config directory.
const usersFile = "user.cfg"

// buildTargets makes one target per configured section (and one per
// member of an alertmanager target, for what the queue retries to it). One
// section never stops the others: a target the configuration marks broken,
// or that cannot be built (a value that cannot work), becomes a
// brokenTarget, so matchers still route to it and each delivery fails with
// the reason (a dead letter and a delivery-failed event), and a warning
// naming its FILE:LINE says so (docs/proxmox-compat.md). The error is for
// what every target shares (the users file, the templates, the aliases, the
// relay settings of herald.cfg). env holds what the running daemon lends
// its targets.
func buildTargets(s *Settings, log *slog.Logger, env targetEnv) (map[string]target.Target, config.Diagnostics, error) {
	b, err := newBuilder(s, log)
	if err != nil {
		return nil, nil, err
	}
	logAliasProblems(b.aliasProblems, log)
	b.env = env
	out := make(map[string]target.Target, len(s.Notify.Targets))
	var warns config.Diagnostics
	for _, sec := range s.Notify.Targets {
		if reason, ok := s.Notify.BrokenReason(sec.Name); ok {
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

// newBuilder loads what every target build needs: the users file for
// mailto-user and the title/body templates.
func newBuilder(s *Settings, log *slog.Logger) (builder, error) {
	users, err := recipients.LoadUsers(filepath.Join(s.Paths.ConfigDir, usersFile))
	if err != nil {
		return builder{}, config.Diagnostics{{File: filepath.Join(s.Paths.ConfigDir, usersFile), Msg: err.Error()}}
	}
	rnd, err := render.New(filepath.Join(s.Paths.ConfigDir, templatesDir))
	if err != nil {
		return builder{}, templateDiag(err)
	}
	lookup, aliasProblems, err := newLookup(s, users, log)
	if err != nil {
		return builder{}, err
	}
	b := builder{s: s, log: log, users: users, rnd: rnd, shimPaths: s.ShimPaths,
		lookup: lookup, aliasProblems: aliasProblems}
	if b.relaySettings, err = b.relay(); err != nil {
		d := config.Diagnostic{File: s.Daemon.File, Msg: err.Error()}
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

type builder struct {
	s         *Settings
	log       *slog.Logger
	users     *recipients.Users
	rnd       *render.Renderer
	shimPaths []string
	// lookup resolves mail targets' recipients per delivery (recipients.go).
	lookup        *recipients.Lookup
	aliasProblems config.Diagnostics
	env           targetEnv
	relaySettings *sendmail.Relay // herald.cfg's relay; nil when none
}

func (b builder) hostname() string { return b.s.Daemon.Hostname }

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
	state := filepath.Join(b.s.Paths.StateDir, "mail")
	dir := b.s.Daemon.MailDir
	switch {
	case b.s.Paths.Embedded:
		dir = state
	case dir == "":
		dir = mailbox.DefaultDir
	}
	mb := mbox.New(filepath.Join(dir, user), b.hostname())
	if dir != state {
		helper := b.s.Daemon.MailboxHelper
		mb.CreateWith(func() error { return mailbox.Creator{Dir: dir, Socket: helper}.Create(user) })
	}
	return mb, true
}

func (b builder) recipients(sec *config.Section) []string {
	return recipients.Recipients(sec.List("mailto"), sec.List("mailto-user"), b.users, b.log)
}

func (b builder) build(sec *config.Section) (target.Target, error) {
	get := func(k string) string { v, _ := sec.Get(k); return v }
	switch sec.Type {
	case "file":
		return file.New(get("path")), nil
	case "mbox":
		return mbox.New(get("path"), b.hostname()), nil
	case "journal":
		return journal.New(journal.Options{Identifier: get("identifier")}), nil
	case "exec":
		var timeout time.Duration
		if v := get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, err
			}
			timeout = d
		}
		return exec.New(exec.Options{Command: get("command"), Timeout: timeout})
	case "gotify":
		tok, _ := sec.Secret("token")
		return gotify.New(gotify.Options{Server: get("server"), Token: tok.Reveal(), Proxy: b.s.Datacenter.HTTPProxy}), nil
	case "ntfy":
		tok, _ := sec.Secret("token")
		prio := 0
		if v := get("priority"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil {
				return nil, err
			}
			prio = p
		}
		return ntfy.New(ntfy.Options{Server: get("server"), Topic: get("topic"), Token: tok.Reveal(),
			Priority: prio, Tags: sec.List("tags")})
	case "webhook":
		var hs []webhook.Header
		for _, h := range sec.Headers() {
			hs = append(hs, webhook.Header{Name: h.Name, Value: h.Value})
		}
		secrets := map[string]string{}
		for _, ns := range sec.NamedSecrets("secret") {
			secrets[ns.Name] = ns.Value.Reveal()
		}
		body, _ := sec.Decoded("body")
		return webhook.New(webhook.Options{URL: get("url"), Method: get("method"), Headers: hs,
			Body: body, Secrets: secrets, Proxy: b.s.Datacenter.HTTPProxy})
	case "alertmanager":
		return b.alertmanager(sec)
	case "smtp":
		pw, _ := sec.Secret("password")
		port := 0
		if v := get("port"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil {
				return nil, err
			}
			port = p
		}
		from, author, err := b.fromAndAuthor(sec, "")
		if err != nil {
			return nil, err
		}
		password := pw.Reveal()
		if get("username") == "" {
			password = "" // Proxmox authenticates only with a username (config warns)
		}
		return smtp.New(smtp.Options{Server: get("server"), Port: port, Mode: get("mode"),
			Username: get("username"), Password: password, From: from,
			Author: author, To: b.recipients(sec), Hostname: b.mailName(),
			Recipients: b.recipientsOf(sec)})
	case "sendmail":
		// Without a from-address: root@MAILNAME (Proxmox's root@HOSTNAME,
		// with the name Debian's MTAs use).
		from, author, err := b.fromAndAuthor(sec, "root@"+b.mailName())
		if err != nil {
			return nil, err
		}
		return sendmail.New(sendmail.Options{To: b.recipients(sec), From: from,
			Author: author, Hostname: b.mailName(), LocalDomains: b.s.LocalDomains().Names, Relay: b.relaySettings,
			LocalMailbox: b.localMailbox, SendmailPath: get("sendmail-path"),
			ShimPaths: b.shimPaths, Log: b.log, Recipients: b.recipientsOf(sec)})
	}
	return nil, fmt.Errorf("unsupported target type %q", sec.Type)
}

// fromAndAuthor returns a mail target's envelope sender and author. The
// from-address may carry a display name, as Proxmox accepts
// ("Proxmox VE <pve@example.com>"): the address is the sender and the name
// the author unless author is set. Without a from-address: datacenter.cfg's
// email_from when herald shares Proxmox's files, else def (Proxmox's docs:
// root@MAILNAME).
func (b builder) fromAndAuthor(sec *config.Section, def string) (from, author string, err error) {
	author, _ = sec.Get("author")
	v, ok := sec.Get("from-address")
	if !ok || v == "" {
		v = b.s.Datacenter.EmailFrom
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

// CheckTargets builds every configured target without sending anything, so
// that `herald check` reports what the daemon would refuse at start-up (the
// error: what every target shares, aliases included) and the targets it
// would disable (the warnings).
func CheckTargets(s *Settings) (config.Diagnostics, error) {
	_, warns, err := buildTargets(s, slog.New(slog.DiscardHandler), targetEnv{})
	if err != nil {
		return nil, err
	}
	if ds := aliasDiagnostics(s); len(ds) > 0 {
		return warns, ds
	}
	return warns, nil
}

// BuildTarget builds one named target, disabled or not (`herald test`
// sends to disabled targets too, as Proxmox does).
func BuildTarget(s *Settings, name string) (target.Target, error) {
	sec := s.Notify.Target(name)
	if sec == nil {
		return nil, fmt.Errorf("no target named %q", name)
	}
	if reason, ok := s.Notify.BrokenReason(name); ok {
		return nil, fmt.Errorf("target %s is disabled by a configuration problem: %s", name, reason)
	}
	b, err := newBuilder(s, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return b.buildRendered(sec)
}

// relay is the smarthost of herald.cfg for sendmail targets, nil when none
// is set. The password comes from relay-password-file (which, like the
// private notifications file, must not be readable by others).
func (b builder) relay() (*sendmail.Relay, error) {
	d := b.s.Daemon
	if d.Relay == "" {
		return nil, nil
	}
	host, portText := splitHostPortLoose(d.Relay)
	port := 0
	if portText != "" {
		var err error
		if port, err = strconv.Atoi(portText); err != nil {
			return nil, fmt.Errorf("relay %q: bad port", d.Relay)
		}
	}
	tlsConfig, err := relayTLS(d)
	if err != nil {
		return nil, err
	}
	r := &sendmail.Relay{Host: host, Port: port, Mode: d.RelayMode, Username: d.RelayUsername, TLSConfig: tlsConfig}
	if d.RelayPasswordFile != "" {
		fi, err := os.Stat(d.RelayPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("relay-password-file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("relay-password-file %s: permissions %#o expose the password: run chmod 600 %s",
				d.RelayPasswordFile, fi.Mode().Perm(), d.RelayPasswordFile)
		}
		pw, err := os.ReadFile(d.RelayPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("relay-password-file: %w", err)
		}
		r.Password = strings.TrimRight(string(pw), "\r\n")
	}
	return r, nil
}

func templateDiag(err error) error {
	var re *render.Error
	if errors.As(err, &re) {
		return config.Diagnostics{{File: re.File, Line: re.Line, Msg: fmt.Sprintf("column %d: %s", re.Col, re.Msg)}}
	}
	return config.Diagnostics{{Msg: "templates: " + err.Error()}}
}

// renderedTarget hands a target the event with title and body rendered from
// the templates of its type. The file and exec targets get the event
// itself: they pass it on as data.
type renderedTarget struct {
	target.Target
	r *render.Renderer
}

func rendered(t target.Target, typ string, r *render.Renderer) target.Target {
	if typ == "file" || typ == "exec" {
		return t
	}
	rt := renderedTarget{Target: t, r: r}
	if v, ok := t.(target.Verifier); ok {
		return renderedVerifier{rt, v}
	}
	return rt
}

// Unwrap returns the wrapped target.
func (t renderedTarget) Unwrap() target.Target { return t.Target }

// IgnoresMail passes the wrapped target's answer on (target.MailBlind).
func (t renderedTarget) IgnoresMail() bool { return target.IgnoresMail(t.Target) }

// IsLocal passes the wrapped target's answer on (target.Local).
func (t renderedTarget) IsLocal() bool { return target.IsLocal(t.Target) }

func (t renderedTarget) Deliver(ctx context.Context, ev *event.Event) error {
	return t.Target.Deliver(ctx, t.r.Render(ev))
}

type renderedVerifier struct {
	renderedTarget
	v target.Verifier
}

func (t renderedVerifier) Delivered(ctx context.Context, ev *event.Event) (bool, error) {
	return t.v.Delivered(ctx, ev)
}
