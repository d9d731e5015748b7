// Package ldapdir asks an LDAP directory whom to warn about an account,
// with stoney backup's rules (docs/recipients.md):
//
//  1. the account's warning flag (sstBackupWarningOn) FALSE → nobody;
//  2. the account has mail values and its medium
//     (sstNotificationWarningMedium) is "mail" → all of its mail values;
//  3. otherwise the person it belongs to (sstBelongsToPersonUID → that
//     person's entry) → all of the person's mail values.
//
// Attribute names, filters and base DNs are configurable. Account IDs are
// escaped (RFC 4515) before they go into a filter. An unreachable
// directory, a timeout or a refused bind is a temporary failure; answers are
// cached, and a stale answer serves, with a warning, while the directory is
// down. The bind password appears in no error or log line.
package ldapdir

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"herald/internal/config"
	"herald/internal/recipients"
)

// maxEntries bounds the entries one search may return: an account ID or a
// person UID names one entry; more is a directory mistake.
const maxEntries = 16

// Directory is one configured LDAP directory.
type Directory struct {
	cfg   config.LDAP
	tls   *tls.Config // nil: system roots
	log   *slog.Logger
	now   func() time.Time
	mu    sync.Mutex
	cache map[string]cached
	// down remembers that the last look-up failed, so that the log says
	// when the directory goes away and comes back, not at every attempt.
	down bool
}

type cached struct {
	w  recipients.Warning
	at time.Time
}

var _ recipients.Accounts = (*Directory)(nil)

// New returns the directory of cfg. It reads the CA file now, so that
// `herald check` reports a bad one.
func New(cfg config.LDAP, log *slog.Logger) (*Directory, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Directory{cfg: cfg, log: log.With("directory", "ldap "+cfg.Name), now: time.Now, cache: map[string]cached{}}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap %s: ca-file: %w", cfg.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap %s: ca-file %s holds no PEM certificate", cfg.Name, cfg.CAFile)
		}
		d.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return d, nil
}

// String names the directory.
func (d *Directory) String() string { return "ldap " + d.cfg.Name }

// GoString is String: %#v of a Directory would otherwise print its
// unexported configuration, the bind password among it (fmt cannot call
// Secret's own methods on an unexported field).
func (d *Directory) GoString() string { return d.String() }

// LogValue keeps the bind password out of structured logs.
func (d *Directory) LogValue() slog.Value { return slog.StringValue(d.String()) }

// Warn applies stoney's rules to account.
func (d *Directory) Warn(ctx context.Context, account string) (recipients.Warning, error) {
	now := d.now()
	d.mu.Lock()
	c, have := d.cache[account]
	d.mu.Unlock()
	if have && now.Sub(c.at) < d.cfg.CacheTime {
		return c.w, nil
	}
	w, err := d.lookup(ctx, account)
	if err != nil {
		var le *recipients.LookupError
		temp := errors.As(err, &le) && le.Temp
		if temp {
			d.setDown(true, err)
			if have && now.Sub(c.at) < d.cfg.StaleTime {
				d.log.Warn("directory unreachable: using a cached answer", "account", account,
					"age", now.Sub(c.at).Round(time.Second).String(), "err", err.Error())
				return c.w, nil
			}
		}
		return recipients.Warning{}, err
	}
	d.setDown(false, nil)
	d.mu.Lock()
	d.cache[account] = cached{w: w, at: now}
	d.pruneLocked(now)
	d.mu.Unlock()
	return w, nil
}

func (d *Directory) setDown(down bool, err error) {
	d.mu.Lock()
	changed := d.down != down
	d.down = down
	d.mu.Unlock()
	switch {
	case changed && down:
		d.log.Warn("directory unreachable: deliveries that need it wait and retry", "err", err.Error())
	case changed:
		d.log.Info("directory reachable again")
	}
}

func (d *Directory) pruneLocked(now time.Time) {
	if len(d.cache) < 1024 {
		return
	}
	for k, c := range d.cache {
		if now.Sub(c.at) >= d.cfg.StaleTime {
			delete(d.cache, k)
		}
	}
}

// lookup asks the directory, without the cache.
func (d *Directory) lookup(ctx context.Context, account string) (recipients.Warning, error) {
	conn, err := d.connect(ctx)
	if err != nil {
		return recipients.Warning{}, err
	}
	defer func() { _ = conn.Close() }() // an error closing a finished session changes nothing
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	c := d.cfg
	attrs := []string{c.WarningAttr, c.MediumAttr, c.OwnerAttr, c.MailAttr}
	accounts, err := d.search(ctx, conn, c.BaseDNs, c.AccountFilter, account, attrs)
	if err != nil {
		return recipients.Warning{}, err
	}
	switch len(accounts) {
	case 0:
		return recipients.Warning{}, nil
	case 1:
	default:
		return recipients.Warning{}, recipients.Permanentf("%s: account %q matches %d entries (%s and %s): the filter must name one",
			d, account, len(accounts), accounts[0].DN, accounts[1].DN)
	}
	acc := accounts[0]
	// Rule 1. A directory without the flag (another schema) warns.
	if v := acc.GetEqualFoldAttributeValue(c.WarningAttr); strings.EqualFold(v, "FALSE") {
		return recipients.Warning{Found: true, Off: true}, nil
	}
	// Rule 2.
	mails := clean(acc.GetEqualFoldAttributeValues(c.MailAttr))
	if len(mails) > 0 && strings.EqualFold(acc.GetEqualFoldAttributeValue(c.MediumAttr), "mail") {
		return recipients.Warning{Found: true, Addresses: mails}, nil
	}
	// Rule 3.
	owner := acc.GetEqualFoldAttributeValue(c.OwnerAttr)
	if owner == "" {
		return recipients.Warning{}, recipients.Permanentf("%s: account %q (%s) has no %s addresses with %s mail, and no %s",
			d, account, acc.DN, c.MailAttr, c.MediumAttr, c.OwnerAttr)
	}
	persons, err := d.search(ctx, conn, c.PersonBaseDNs, c.PersonFilter, owner, []string{c.MailAttr})
	if err != nil {
		return recipients.Warning{}, err
	}
	switch len(persons) {
	case 0:
		return recipients.Warning{}, recipients.Permanentf("%s: account %q belongs to person %q, who is not in the directory",
			d, account, owner)
	case 1:
	default:
		return recipients.Warning{}, recipients.Permanentf("%s: person %q of account %q matches %d entries", d, owner, account, len(persons))
	}
	mails = clean(persons[0].GetEqualFoldAttributeValues(c.MailAttr))
	if len(mails) == 0 {
		return recipients.Warning{}, recipients.Permanentf("%s: person %q (%s) of account %q has no %s address",
			d, owner, persons[0].DN, account, c.MailAttr)
	}
	return recipients.Warning{Found: true, Addresses: mails}, nil
}

// clean drops empty values and values that cannot be an address.
func clean(vs []string) []string {
	var out []string
	for _, v := range vs {
		v = strings.TrimSpace(v)
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '<' || r == '>' }) {
			continue
		}
		out = append(out, v)
	}
	return out
}

// Filter returns the filter template with {id} replaced by id, escaped as
// RFC 4515 asks: an ID can never change the filter's structure.
func Filter(template, id string) string {
	return strings.ReplaceAll(template, "{id}", ldap.EscapeFilter(id))
}

// search runs filter for id under each base DN (subtree) and returns every
// entry. A base DN that does not exist contributes nothing.
func (d *Directory) search(ctx context.Context, conn *ldap.Conn, bases []string, template, id string, attrs []string) ([]*ldap.Entry, error) {
	var out []*ldap.Entry
	filter := Filter(template, id)
	for _, base := range bases {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, maxEntries,
			int(d.cfg.Timeout/time.Second), false, filter, attrs, nil)
		res, err := conn.Search(req)
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			continue
		}
		if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return nil, recipients.Permanentf("%s: %q matches more than %d entries under %s", d, id, maxEntries, base)
		}
		if err != nil {
			return nil, d.fail(ctx, "search "+base, err)
		}
		out = append(out, res.Entries...)
	}
	return out, nil
}

// connect dials the servers in order and binds; the first that works is
// used. Every failure is temporary: the next attempt may reach one.
func (d *Directory) connect(ctx context.Context) (*ldap.Conn, error) {
	var errs []string
	for _, s := range d.cfg.Servers {
		conn, err := d.dial(ctx, s)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &recipients.LookupError{Temp: true,
		Err: fmt.Errorf("%s: no server answered: %s", d, strings.Join(errs, "; "))}
}

func (d *Directory) dial(ctx context.Context, server string) (*ldap.Conn, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("%s: bad URL", server)
	}
	timeout := d.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	tc := d.tlsConfig(u.Hostname())
	conn, err := ldap.DialURL(server, ldap.DialWithDialer(&net.Dialer{Timeout: timeout}), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", server, err)
	}
	conn.SetTimeout(timeout)
	if d.cfg.StartTLS && u.Scheme == "ldap" {
		if err := conn.StartTLS(tc); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("%s: StartTLS: %v", server, err)
		}
	}
	if d.cfg.BindDN != "" {
		if err := conn.Bind(d.cfg.BindDN, d.cfg.BindPassword.Reveal()); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("%s: bind as %s refused: %v", server, d.cfg.BindDN, d.scrub(err.Error()))
		}
	}
	return conn, nil
}

func (d *Directory) tlsConfig(host string) *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if d.tls != nil {
		tc = d.tls.Clone()
	}
	tc.ServerName = host
	return tc
}

// fail wraps a search error: the connection or the server failed, which
// another attempt may not meet.
func (d *Directory) fail(ctx context.Context, what string, err error) error {
	msg := d.scrub(err.Error())
	if ctx.Err() != nil {
		msg = fmt.Sprintf("%v (timeout %v)", ctx.Err(), d.cfg.Timeout)
	}
	return &recipients.LookupError{Temp: true, Err: fmt.Errorf("%s: %s: %s", d, what, msg)}
}

// scrub removes the bind password from s, should a server ever echo it.
func (d *Directory) scrub(s string) string {
	if pw := d.cfg.BindPassword.Reveal(); pw != "" {
		s = strings.ReplaceAll(s, pw, "<secret>")
	}
	return s
}
