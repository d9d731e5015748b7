package build

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"herald/internal/aliases"
	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/recipients"
	"herald/internal/recipients/ldapdir"
	"herald/internal/target"
)

// explainTimeout bounds the directory look-ups of one `herald explain`.
const explainTimeout = 30 * time.Second

// loadAliases reads herald.cfg's aliases-file. Its problems come back as
// diagnostics naming the file and line; a file that cannot be read at all
// is an error diagnostic and an empty table.
func loadAliases(d *config.Daemon) (*aliases.Table, config.Diagnostics) {
	path := d.AliasesFile
	if path == "" {
		return &aliases.Table{}, nil
	}
	tab, probs, err := aliases.Load(path)
	if err != nil {
		return &aliases.Table{}, config.Diagnostics{{File: path, Msg: err.Error()}}
	}
	var ds config.Diagnostics
	for _, p := range probs {
		ds = append(ds, config.Diagnostic{File: path, Line: p.Line, Msg: p.Msg, Warning: p.Warning})
	}
	return tab, ds
}

// newLookup builds the recipient lookup of mail targets: users file,
// aliases and the configured LDAP directories.
func newLookup(in Input, users *recipients.Users, log *slog.Logger) (*recipients.Lookup, config.Diagnostics, error) {
	tab, ds := loadAliases(in.Daemon)
	l := &recipients.Lookup{Users: users, Aliases: tab, AliasesFile: in.Daemon.AliasesFile, Hostname: in.Daemon.Hostname,
		LocalDomains: in.localDomains().Names, Log: log}
	var errs config.Diagnostics
	for _, c := range in.Notify.LDAP {
		d, err := ldapdir.New(*c, log)
		if err != nil {
			errs = append(errs, config.Diagnostic{File: c.File, Line: c.Line, Msg: err.Error()})
			continue
		}
		l.Accounts = append(l.Accounts, d)
	}
	if len(errs) > 0 {
		return nil, ds, errs
	}
	return l, ds, nil
}

// recipientSpec is the look-up of what a mail target says about its
// recipients.
func recipientSpec(r config.MailRecipients) recipients.Spec {
	return recipients.Spec{Mailto: r.Mailto, MailtoUser: r.MailtoUser, Field: r.Field}
}

// recipientsOf returns the per-delivery recipient resolution of a mail
// target.
func (b builder) recipientsOf(r config.MailRecipients) target.Recipients {
	spec := recipientSpec(r)
	l := b.lookup
	return func(ctx context.Context, ev *event.Event) ([]string, bool, error) {
		r, err := l.Resolve(ctx, spec, ev)
		return r.To, len(r.Off) > 0, err
	}
}

// RecipientError is how `herald explain` shows a target whose recipients
// could not be resolved.
type RecipientError struct {
	Error     string `json:"error"`
	Temporary bool   `json:"temporary"`
}

// ExplainRecipients resolves, for each named mail target (sendmail, smtp),
// whom ev would be mailed to: a list of addresses, or a *RecipientError.
// Other targets are left out.
func ExplainRecipients(in Input, names []string, ev *event.Event) (map[string]any, error) {
	b, err := newBuilder(in, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), explainTimeout)
	defer cancel()
	out := map[string]any{}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, name := range sorted {
		sec := in.Notify.Target(name)
		if sec == nil {
			continue
		}
		var rcpts config.MailRecipients
		switch c, _ := sec.Target(); c := c.(type) {
		case config.SMTPTarget:
			rcpts = c.Recipients
		case config.SendmailTarget:
			rcpts = c.Recipients
		default:
			continue
		}
		r, err := b.lookup.Resolve(ctx, recipientSpec(rcpts), ev)
		switch {
		case err != nil:
			out[name] = &RecipientError{Error: err.Error(), Temporary: target.IsTemporary(err)}
		case r.To == nil:
			out[name] = []string{}
		default:
			out[name] = r.To
		}
	}
	return out, nil
}

// aliasDiagnostics splits the aliases file's problems for `herald check`:
// errors fail the check, warnings are added to in.Notify's.
func aliasDiagnostics(in Input) (errs config.Diagnostics) {
	_, ds := loadAliases(in.Daemon)
	for _, d := range ds {
		if d.Warning {
			in.Notify.Warnings = append(in.Notify.Warnings, d)
		} else {
			errs = append(errs, d)
		}
	}
	return errs
}

// logAliasProblems reports the aliases file's problems when the daemon
// (re)loads: they do not stop it, the rest of the file still applies.
func logAliasProblems(ds config.Diagnostics, log *slog.Logger) {
	for _, d := range ds {
		if d.Warning {
			log.Warn("aliases file", "problem", d.Error())
		} else {
			log.Error("aliases file: entry unusable", "problem", d.Error())
		}
	}
}
