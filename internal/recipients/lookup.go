package recipients

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"herald/internal/aliases"
	"herald/internal/event"
)

// Accounts answers, for an account ID taken from an event, whom to warn
// about it (an LDAP directory with stoney backup's rules, for instance).
type Accounts interface {
	// Warn looks account up. An error is a *LookupError saying whether to
	// retry; an account the directory does not know is not an error
	// (Warning.Found false).
	Warn(ctx context.Context, account string) (Warning, error)
	// String names the directory (never its credentials).
	String() string
}

// Warning is a directory's answer about one account.
type Warning struct {
	Found bool // the directory knows the account
	// Off: the account's warning flag is off, nobody is to be mailed.
	Off       bool
	Addresses []string
}

// LookupError is a failed look-up. Temp says whether retrying can help (the
// directory was unreachable, timed out or refused the bind) or not (the
// account's person is missing, nobody has an address).
type LookupError struct {
	Err  error
	Temp bool
}

func (e *LookupError) Error() string   { return e.Err.Error() }
func (e *LookupError) Unwrap() error   { return e.Err }
func (e *LookupError) Temporary() bool { return e.Temp }

// Permanentf returns a permanent *LookupError.
func Permanentf(format string, args ...any) error {
	return &LookupError{Err: fmt.Errorf(format, args...)}
}

// Spec is what a mail target says about its recipients: the static mailto
// and mailto-user lists and, optionally, the event field whose value names
// an account (mailto-field).
type Spec struct {
	Mailto     []string
	MailtoUser []string
	Field      string
}

// Result is a target's recipients for one event.
type Result struct {
	To []string
	// Off lists accounts whose warning flag is off: when To is empty
	// because of them, nobody is to be mailed and that is no error.
	Off []string
}

// Lookup resolves mail targets' recipients: the static list (mailto, then
// mailto-user through Users), plus the account named by the event's
// mailto-field through Accounts in order and then Users; every local
// address then goes through the aliases. The same code serves deliveries
// and `herald explain`.
type Lookup struct {
	Users    Resolver
	Accounts []Accounts
	Aliases  *aliases.Table
	// AliasesFile, when set, is the file Aliases was read from: it is read
	// again when its size or modification time changes, so that an edit
	// takes effect at the next delivery, as after newaliases on any Debian
	// host. A file that fails to load keeps the previous table.
	AliasesFile string
	Hostname    string
	// LocalDomains are further domains whose addresses are local (the
	// mail name), as the mail targets see them.
	LocalDomains []string
	Log          *slog.Logger

	mu         sync.Mutex
	offNoted   map[string]bool
	aliasStamp string
}

// Resolve returns the recipients of ev for spec; ev nil gives the static
// list only. Errors are *LookupError (temporary when a directory is
// unreachable).
func (l *Lookup) Resolve(ctx context.Context, spec Spec, ev *event.Event) (Result, error) {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	list := Recipients(spec.Mailto, spec.MailtoUser, l.Users, log)
	if spec.Field != "" && ev != nil {
		if id := strings.TrimSpace(ev.Fields[spec.Field]); id != "" {
			w, err := l.account(ctx, id)
			if err != nil {
				return Result{}, err
			}
			if w.Off {
				res.Off = append(res.Off, id)
				l.noteOff(log, id, ev.ID)
			}
			list = append(list, w.Addresses...)
		}
	}
	seen := map[string]bool{}
	tab := l.aliases(log)
	for _, a := range list {
		exp, err := tab.Expand(a, func(s string) (string, bool) { return aliases.LocalName(s, l.Hostname, l.LocalDomains...) })
		if err != nil {
			return Result{}, &LookupError{Err: fmt.Errorf("aliases: %s: %w", a, err)}
		}
		if len(exp) == 0 {
			log.Warn("recipient's alias has only command, file or :include: entries, which herald skips: not sending to it", "recipient", a)
		}
		for _, e := range exp {
			if !seen[e] {
				seen[e] = true
				res.To = append(res.To, e)
			}
		}
	}
	return res, nil
}

// account resolves an account ID: the first directory that knows it
// decides; a directory that fails before one knew it makes the whole
// look-up fail (it might have been the one that knows). Then the users
// file, where the ID is a user ID.
func (l *Lookup) account(ctx context.Context, id string) (Warning, error) {
	for _, a := range l.Accounts {
		w, err := a.Warn(ctx, id)
		if err != nil {
			var le *LookupError
			if !errors.As(err, &le) {
				err = &LookupError{Err: err, Temp: true}
			}
			return Warning{}, err
		}
		if w.Found {
			if !w.Off && len(w.Addresses) == 0 {
				return Warning{}, Permanentf("%s: account %q has no mail addresses", a, id)
			}
			return w, nil
		}
	}
	if l.Users != nil {
		if addr, ok := l.Users.Address(id); ok && addr != "" {
			return Warning{Found: true, Addresses: []string{addr}}, nil
		}
	}
	where := "the users file"
	if len(l.Accounts) > 0 {
		var names []string
		for _, a := range l.Accounts {
			names = append(names, a.String())
		}
		where = strings.Join(names, ", ") + " or the users file"
	}
	return Warning{}, Permanentf("no recipient for %q: not found in %s", id, where)
}

// noteOff logs once per account that its warnings are off.
func (l *Lookup) noteOff(log *slog.Logger, account, eventID string) {
	l.mu.Lock()
	if l.offNoted == nil {
		l.offNoted = map[string]bool{}
	}
	first := !l.offNoted[account]
	l.offNoted[account] = true
	l.mu.Unlock()
	if first {
		log.Info("account's warning flag is off: its people are not mailed", "account", account, "event", eventID)
	}
}

// aliases returns the current aliases table, re-reading AliasesFile when it
// changed since the last look.
func (l *Lookup) aliases(log *slog.Logger) *aliases.Table {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.AliasesFile == "" {
		return l.Aliases
	}
	stamp := "missing"
	if fi, err := os.Stat(l.AliasesFile); err == nil {
		stamp = fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
	}
	if l.aliasStamp == "" {
		l.aliasStamp = stamp // Aliases was loaded with the Lookup
		return l.Aliases
	}
	if stamp == l.aliasStamp {
		return l.Aliases
	}
	tab, probs, err := aliases.Load(l.AliasesFile)
	if err != nil {
		log.Error("aliases file changed but cannot be read: keeping the previous aliases", "file", l.AliasesFile, "err", err.Error())
		return l.Aliases
	}
	l.aliasStamp = stamp
	l.Aliases = tab
	for _, p := range probs {
		log.Warn("aliases file", "problem", fmt.Sprintf("%s:%d: %s", l.AliasesFile, p.Line, p.Msg))
	}
	log.Info("aliases file changed: read again", "file", l.AliasesFile, "aliases", tab.Len())
	return tab
}
