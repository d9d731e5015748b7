package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAP is one `ldap` section: a directory that mail targets with a
// mailto-field ask whom to warn about an account (docs/recipients.md). The
// defaults follow stoney backup's schema.
type LDAP struct {
	Name string `json:"name"`
	File string `json:"file"`
	Line int    `json:"line"`
	// Servers are ldap:// or ldaps:// URLs, tried in order (failover).
	Servers  []string `json:"servers"`
	StartTLS bool     `json:"starttls,omitempty"`
	CAFile   string   `json:"ca-file,omitempty"`
	BindDN   string   `json:"bind-dn,omitempty"`
	// BindPassword comes from the private file.
	BindPassword Secret `json:"bind-password"`
	// BaseDNs are searched for accounts; PersonBaseDNs for the persons
	// accounts belong to (default: BaseDNs).
	BaseDNs       []string `json:"base-dn"`
	PersonBaseDNs []string `json:"person-base-dn"`
	// AccountFilter and PersonFilter contain {id}, replaced by the escaped
	// account ID or person UID (RFC 4515).
	AccountFilter string `json:"account-filter"`
	PersonFilter  string `json:"person-filter"`
	// Attribute names.
	WarningAttr string        `json:"warning-attribute"`
	MediumAttr  string        `json:"medium-attribute"`
	OwnerAttr   string        `json:"owner-attribute"`
	MailAttr    string        `json:"mail-attribute"`
	Timeout     time.Duration `json:"timeout"`
	// CacheTime is how long an answer is used without asking again;
	// StaleTime how long an older one still serves while the directory is
	// unreachable.
	CacheTime time.Duration `json:"cache-time"`
	StaleTime time.Duration `json:"stale-time"`
}

// Defaults of an ldap section, in one place: stoney backup's schema.
const (
	DefaultLDAPFilter      = "(uid={id})"
	DefaultLDAPWarningAttr = "sstBackupWarningOn"
	DefaultLDAPMediumAttr  = "sstNotificationWarningMedium"
	DefaultLDAPOwnerAttr   = "sstBelongsToPersonUID"
	DefaultLDAPMailAttr    = "mail"
	DefaultLDAPTimeout     = 10 * time.Second
	DefaultLDAPCacheTime   = 10 * time.Minute
	DefaultLDAPStaleTime   = 7 * 24 * time.Hour
)

// MailtoFieldKey is the mail targets' key naming the event field whose
// value is an account to resolve (per-event recipients).
const MailtoFieldKey = "mailto-field"

func init() {
	registerType("ldap", &typeDef{kind: kindHerald, keys: common(map[string]keyDef{
		"server":            {array: true, required: true, check: checkLDAPURL},
		"starttls":          {check: checkBool},
		"ca-file":           {check: checkAbsPath},
		"bind-dn":           {},
		"base-dn":           {array: true, required: true, check: checkDN},
		"person-base-dn":    {array: true, check: checkDN},
		"account-filter":    {check: checkLDAPFilter},
		"person-filter":     {check: checkLDAPFilter},
		"warning-attribute": {check: checkLDAPAttr},
		"medium-attribute":  {check: checkLDAPAttr},
		"owner-attribute":   {check: checkLDAPAttr},
		"mail-attribute":    {check: checkLDAPAttr},
		"timeout":           {check: checkDuration},
		"cache-time":        {check: checkDuration},
		"stale-time":        {check: checkDuration},
	}), priv: map[string]keyDef{
		"bind-password": {},
	}, secretKeys: []string{"bind-password"}, build: buildLDAP})
	// Per-event recipients on Proxmox's two mail target types.
	for _, typ := range []string{"sendmail", "smtp"} {
		sectionTypes[typ].keys[MailtoFieldKey] = keyDef{check: checkFieldName}
	}
}

func buildLDAP(d diags, s *Section, cfg *Config) {
	get := func(k, def string) string {
		if v, ok := s.Get(k); ok {
			return v
		}
		return def
	}
	dur := func(k string, def time.Duration) time.Duration {
		if v, ok := s.Get(k); ok {
			if t, err := time.ParseDuration(v); err == nil {
				return t
			}
		}
		return def
	}
	l := &LDAP{
		Name: s.Name, File: s.File, Line: s.Line,
		Servers:       s.List("server"),
		StartTLS:      s.Bool("starttls"),
		CAFile:        get("ca-file", ""),
		BindDN:        get("bind-dn", ""),
		BaseDNs:       s.List("base-dn"),
		PersonBaseDNs: s.List("person-base-dn"),
		AccountFilter: get("account-filter", DefaultLDAPFilter),
		PersonFilter:  get("person-filter", DefaultLDAPFilter),
		WarningAttr:   get("warning-attribute", DefaultLDAPWarningAttr),
		MediumAttr:    get("medium-attribute", DefaultLDAPMediumAttr),
		OwnerAttr:     get("owner-attribute", DefaultLDAPOwnerAttr),
		MailAttr:      get("mail-attribute", DefaultLDAPMailAttr),
		Timeout:       dur("timeout", DefaultLDAPTimeout),
		CacheTime:     dur("cache-time", DefaultLDAPCacheTime),
		StaleTime:     dur("stale-time", DefaultLDAPStaleTime),
	}
	if len(l.PersonBaseDNs) == 0 {
		l.PersonBaseDNs = l.BaseDNs
	}
	if pw, ok := s.Secret("bind-password"); ok {
		l.BindPassword = pw
	}
	if l.BindDN != "" && l.BindPassword.IsEmpty() {
		d.errf(s.LineOf("bind-dn"), "ldap %s: bind-dn needs a bind-password in the private file", s.Name)
	}
	if l.BindDN == "" && !l.BindPassword.IsEmpty() {
		d.errf(s.Line, "ldap %s: a bind-password is set but no bind-dn", s.Name)
	}
	if l.StartTLS {
		for _, u := range l.Servers {
			if strings.HasPrefix(strings.ToLower(u), "ldaps://") {
				d.errf(s.LineOf("starttls"), "ldap %s: starttls applies to ldap:// servers; %s already speaks TLS", s.Name, u)
			}
		}
	}
	if !l.StartTLS && l.BindDN != "" {
		for _, u := range l.Servers {
			if strings.HasPrefix(strings.ToLower(u), "ldap://") && !loopbackURL(u) {
				d.warnf(s.LineOf("server"), "ldap %s: the bind password would cross the network in clear text to %s: use ldaps:// or starttls true", s.Name, u)
			}
		}
	}
	if l.StaleTime < l.CacheTime {
		d.errf(s.LineOf("stale-time"), "ldap %s: stale-time (%v) must not be shorter than cache-time (%v)", s.Name, l.StaleTime, l.CacheTime)
	}
	if s.Disabled() {
		return // checked like any other, consulted by nobody
	}
	cfg.LDAP = append(cfg.LDAP, l)
}

func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	return isLoopbackName(p.Hostname())
}

func isLoopbackName(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	return strings.HasPrefix(h, "127.") || h == "::1"
}

func checkLDAPURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
	}
	return ""
}

func checkDN(v string) string {
	if _, err := ldap.ParseDN(v); err != nil || v == "" {
		return "must be a distinguished name such as ou=accounts,dc=example,dc=com"
	}
	return ""
}

func checkLDAPFilter(v string) string {
	if !strings.Contains(v, "{id}") {
		return "must contain {id}, where the escaped account ID goes"
	}
	if _, err := ldap.CompileFilter(strings.ReplaceAll(v, "{id}", "x")); err != nil {
		return fmt.Sprintf("is not an LDAP filter (RFC 4515): %v", err)
	}
	return ""
}

func checkLDAPAttr(v string) string {
	for i, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '-')) {
			return "must be an attribute name (letters, digits, '-')"
		}
	}
	if v == "" {
		return "must be an attribute name"
	}
	return ""
}

func checkFieldName(v string) string {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "must be an event field name"
	}
	return ""
}
