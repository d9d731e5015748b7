// Package config loads herald's configuration: notifications.cfg and its
// private companion in Proxmox's section-config format (targets, matchers,
// the legacy group/filter sections, herald's own target types), and
// herald.cfg with the daemon's settings (see LoadDaemon).
//
// The section-config grammar is exactly that of Proxmox's Rust parser, so
// files from Proxmox VE and Proxmox Backup Server load as they are, with
// herald being stricter where Proxmox fails late or silently: every problem
// is reported as FILE:LINE: message at load time, all of them at once.
// herald's one grammar extension, '#' comment lines, loads with a warning
// because Proxmox cannot read such a file.
//
// # notifications.cfg section types
//
// Proxmox's: sendmail, smtp, gotify, webhook, matcher, and the legacy group
// and filter sections (given their documented proxmox-notify 0.2 meaning).
// herald's own: ntfy (server, topic, priority, tags; token in the private
// file), mbox (path), file (path, JSON lines), journal (identifier), exec
// (command, timeout), alertmanager (url, label-field, resolve-after,
// resend-interval, timeout, ca-file, username; password or token in the
// private file). A sendmail target may name an external MTA with
// sendmail-path, which must not lead back to herald's own shim.
// herald's own non-target sections register themselves (registerType):
// heartbeat and usage monitors (monitors.go, docs/monitors.md), classifier
// (classifier.go), ldap (ldap.go) and noise (noise.go: dedup, quiet hours,
// digests).
//
// # herald.cfg
//
// herald.cfg holds the daemon's settings as `key value` lines; blank lines
// and lines starting with '#' are ignored; unknown keys are errors. Keys
// marked "repeatable" may appear several times: the first occurrence
// replaces the default list, later ones add to it.
//
//	hostname NAME                  name used in events and HELO (default: the
//	                               system host name up to the first dot)
//	smtp-listen ADDR:PORT          SMTP listener, repeatable, "none" for no
//	                               listener (default 127.0.0.1:25 and [::1]:25)
//	http-listen ADDR:PORT          HTTP API listener, repeatable, "none" for
//	                               no listener (default 127.0.0.1:8025)
//	smtp-allow PREFIX              client addresses allowed besides loopback,
//	                               e.g. 192.0.2.0/24, repeatable (default none)
//	max-message-size SIZE          bytes, K/M/G suffixes (1024-based) (default 32M)
//	max-recipients N               recipients per message (default 100)
//	max-header-size SIZE           a mail's header block, bytes (default 1M);
//	                               SMTP answers 552 5.3.4 above it
//	max-header-fields N            header fields per mail (default 10000)
//	smtp-timeout DURATION          SMTP command/data timeout (default 5m)
//	spool-dir PATH                 absolute (default STATE/spool)
//	notifications-file PATH        absolute, e.g. /etc/pve/notifications.cfg
//	                               (default CONFIG/notifications.cfg)
//	notifications-priv-file PATH   absolute, e.g. /etc/pve/priv/notifications.cfg
//	                               (default: notifications-priv.cfg, then
//	                               priv/notifications.cfg, next to the public file)
//	datacenter-file PATH           absolute, e.g. /etc/pve/datacenter.cfg (PBS:
//	                               /etc/proxmox-backup/node.cfg): email_from is
//	                               the default from-address, http_proxy the
//	                               proxy of gotify and webhook targets
//	flavor pve|pbs                 built-in defaults to mimic (default pve)
//	relay HOST:PORT                smarthost for sendmail targets (default none:
//	                               local recipients get local mailboxes)
//	relay-mode insecure|starttls|tls  (default tls for port 465, else starttls)
//	relay-username NAME            AUTH user; needs relay-password-file
//	relay-password-file PATH       absolute; file holding the relay password
//	max-delivery-age DURATION      give up retrying after this (default 5d)
//	delivery-concurrency N         remote targets delivered to at once (default 16)
//	history-retention DURATION     how long the event history keeps events (default 30d)
//	history-max-size SIZE          the event history's size bound (default 64M)
//	smtp-max-sessions N            concurrent SMTP sessions; one more is answered
//	                               421 (default 100)
//	smtp-max-sessions-per-client N concurrent SMTP sessions from one client: a
//	                               local user on loopback, else an address (default 50)
//	smtp-session-time DURATION     a whole SMTP session, however busy (default 10m)
//	smtp-mails-per-minute N        mails one SMTP connection may start per
//	                               minute; beyond, 421 and closed (default 600)
//	fd-reserve N                   file descriptors kept free of SMTP sessions
//	                               for the spool, queue and HTTP (default 64)
//	http-host NAME                 a name the HTTP API accepts in Host: besides
//	                               localhost and IP literals, repeatable
//	                               (default none: DNS rebinding protection)
//	spool-min-free SIZE            free space the spool keeps; below it the shim
//	                               exits 75, SMTP answers 452 and HTTP 503
//	                               (default 64M; root may use its lower half)
//	spool-max-per-uid SIZE         bytes one local user (not root) may have
//	                               waiting in the maildrop (default 256M)
//	quarantine-max-age DURATION    quarantined spool files are removed after
//	                               this (default 30d)
//	quarantine-max-size SIZE       and the oldest beyond this size (default 256M)
//
// Durations are Go durations (90s, 5m, 2h) optionally preceded by whole
// days (5d, 1d12h).
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"herald/internal/event"
	"herald/internal/match"
)

// Config is a loaded and validated notifications configuration. It holds
// no secret outside Sections' redacting accessors, so it is safe to print.
type Config struct {
	Targets  []*Section `json:"targets"`  // target sections, file order, then injected built-ins
	Matchers []*Matcher `json:"matchers"` // file order, then injected built-ins
	Groups   []*Group   `json:"groups,omitempty"`
	Filters  []*Filter  `json:"filters,omitempty"`
	// Herald holds herald's own non-target sections (kindHerald), file
	// order, private parts joined; their build hooks fill the typed fields.
	Herald []*Section `json:"-"`
	LDAP   []*LDAP    `json:"ldap,omitempty"` // ldap sections (ldap.go)
	// Monitors holds the heartbeat and usage sections (monitors.go).
	Monitors Monitors `json:"monitors,omitzero"`
	// Broken are targets that stay routed but fail every delivery with
	// their reason (compat.go).
	Broken   []BrokenTarget `json:"broken,omitempty"`
	Warnings Diagnostics    `json:"warnings,omitempty"`
	Flavor   Flavor         `json:"flavor"`
	// PublicFile and PrivateFile are the file names the config came from.
	PublicFile  string `json:"public-file"`
	PrivateFile string `json:"private-file"`

	// Classifiers are the classifier sections, file order.
	Classifiers []*Classifier `json:"classifiers,omitempty"`
	// Noise holds the noise sections (noise.go), file order.
	Noise []*NoiseRule `json:"noise,omitempty"`
}

// Target returns the target section of that name, or nil.
func (c *Config) Target(name string) *Section {
	for _, t := range c.Targets {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Matcher returns the matcher of that name, or nil.
func (c *Config) Matcher(name string) *Matcher {
	for _, m := range c.Matchers {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Group returns the legacy group of that name, or nil.
func (c *Config) Group(name string) *Group {
	for _, g := range c.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Filter returns the legacy filter of that name, or nil.
func (c *Config) Filter(name string) *Filter {
	for _, f := range c.Filters {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// LoadOptions adjusts Load and Parse.
type LoadOptions struct {
	// Flavor picks the built-in defaults (FlavorPVE unless set).
	Flavor Flavor
	// PublicPath and PrivatePath override the file locations, e.g.
	// /etc/pve/notifications.cfg and /etc/pve/priv/notifications.cfg.
	// Without PrivatePath, Load looks next to the public file for
	// notifications-priv.cfg (PBS layout) then priv/notifications.cfg (PVE).
	PublicPath, PrivatePath string
	// ShimPaths are the paths of herald's own sendmail shim: a sendmail
	// target's sendmail-path pointing at one of them would loop.
	ShimPaths []string
	// Lenient disables a target with an error instead of failing the load
	// (the daemon at start-up; compat.go).
	Lenient bool
}

// Load reads notifications.cfg and its private file from dir (or the
// paths in opt) and validates them. A missing file counts as empty, so a
// missing notifications.cfg yields the built-ins only. The private file must
// not be accessible to group or others. On failure the error is a
// Diagnostics listing every problem (warnings included); on success the
// warnings are in Config.Warnings.
func Load(dir string, opt LoadOptions) (*Config, error) {
	var ds Diagnostics
	pubPath := opt.PublicPath
	if pubPath == "" {
		pubPath = filepath.Join(dir, "notifications.cfg")
	}
	pub := readOptional(&ds, pubPath)

	privPath := opt.PrivatePath
	if privPath == "" {
		base := filepath.Dir(pubPath)
		candidates := []string{filepath.Join(base, "notifications-priv.cfg"), filepath.Join(base, "priv", "notifications.cfg")}
		privPath = candidates[0]
		var found []string
		for _, c := range candidates {
			if _, err := os.Lstat(c); err == nil {
				found = append(found, c)
			}
		}
		if len(found) > 0 {
			privPath = found[0]
		}
		if len(found) > 1 {
			ds = append(ds, Diagnostic{File: found[1], Msg: fmt.Sprintf("ignored because %s exists: keep the secrets in one private file", found[0])})
		}
	}
	var priv []byte
	if fi, err := os.Stat(privPath); err == nil {
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			ds = append(ds, Diagnostic{File: privPath, Msg: fmt.Sprintf("permissions %04o expose secrets: run chmod 600 %s", perm, privPath)})
		}
		priv = readOptional(&ds, privPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		ds = append(ds, Diagnostic{File: privPath, Msg: fmt.Sprintf("cannot read: %v", err)})
	}

	cfg, err := Parse(pubPath, pub, privPath, priv, opt)
	if err != nil {
		var pds Diagnostics
		if !errors.As(err, &pds) {
			return nil, err
		}
		ds = append(ds, pds...)
	} else if len(ds) > 0 {
		ds = append(ds, cfg.Warnings...)
	}
	if ds.HasErrors() {
		ds.sort([]string{pubPath, privPath})
		return nil, ds
	}
	return cfg, nil
}

// readOptional reads a file; a missing file is empty, other errors are
// diagnostics.
func readOptional(ds *Diagnostics, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			*ds = append(*ds, Diagnostic{File: path, Msg: fmt.Sprintf("cannot read: %v", err)})
		}
		return nil
	}
	return b
}

// parsedSection is a section after schema checks, before it becomes a
// Section, Matcher, Group or Filter.
type parsedSection struct {
	typ   string
	def   *typeDef
	id    string
	line  int
	props []prop
	file  string
}

func (p *parsedSection) values(key string) []prop {
	var out []prop
	for _, pr := range p.props {
		if pr.key == key {
			out = append(out, pr)
		}
	}
	return out
}

func (p *parsedSection) get(key string) (string, bool) {
	for _, pr := range p.props {
		if pr.key == key {
			return pr.value, true
		}
	}
	return "", false
}

// sameAs reports whether two sections have the same type and properties
// (Proxmox compares their JSON values to decide builtin vs. modified).
func (p *parsedSection) sameAs(o *parsedSection) bool {
	if p.typ != o.typ || len(p.props) != len(o.props) {
		return false
	}
	key := func(ps []prop) []string {
		out := make([]string, len(ps))
		for i, pr := range ps {
			out[i] = pr.key + "\x00" + pr.value
		}
		// Scalars are order-free; array values keep their relative order
		// under a stable sort by key.
		slices.SortStableFunc(out, func(a, b string) int {
			ka, _, _ := strings.Cut(a, "\x00")
			kb, _, _ := strings.Cut(b, "\x00")
			return strings.Compare(ka, kb)
		})
		return out
	}
	return slices.Equal(key(p.props), key(o.props))
}

// parseFile lexes one file and checks every section against the schema.
func parseFile(d diags, data []byte, private bool) []*parsedSection {
	var out []*parsedSection
	for _, raw := range lexSections(d, data, private) {
		def := sectionTypes[raw.typ]
		switch {
		case def == nil && private:
			d.errf(raw.line, "unknown section type (not shown: the private file holds secrets); it only takes %s sections", privTypeList())
			continue
		case def == nil:
			d.errf(raw.line, "unknown section type '%s' (known: %s)", raw.typ, knownTypes())
			continue
		case private && def.priv == nil:
			d.errf(raw.line, "%s sections have no secrets and do not belong in the private file (it only takes %s sections)", raw.typ, privTypeList())
			continue
		}
		if !validID(raw.id) {
			d.errf(raw.line, "invalid section name '%s': %s", raw.id, idRule)
		}
		keys := def.keys
		if private {
			keys = def.priv
		}
		ps := &parsedSection{typ: raw.typ, def: def, id: raw.id, line: raw.line, file: d.file}
		seen := map[string]int{}
		for _, rp := range raw.props {
			kd, ok := keys[rp.key]
			if !ok {
				_, inPublic := def.keys[rp.key]
				switch {
				case private && inPublic:
					d.errf(rp.line, "'%s' belongs in the public file, not the private one", rp.key)
				case private:
					d.errf(rp.line, "unknown property (not shown: the private file holds secrets); %s sections there only take %s", raw.typ, keyList(keys))
				case slices.Contains(def.secretKeys, rp.key):
					d.errf(rp.line, "'%s' is a secret and belongs in the private file, not here", rp.key)
				default:
					d.errf(rp.line, "unknown property '%s' for %s sections", rp.key, raw.typ)
				}
				continue
			}
			if first, dup := seen[rp.key]; dup && !kd.array {
				d.errf(rp.line, "duplicate property '%s' (already set on line %d)", rp.key, first)
				continue
			}
			if _, dup := seen[rp.key]; !dup {
				seen[rp.key] = rp.line
			}
			if hasControl(rp.value) {
				d.errf(rp.line, "value of '%s' contains a control character", rp.key)
				continue
			}
			if kd.check != nil {
				if reason := kd.check(rp.value); reason != "" {
					if private {
						d.errf(rp.line, "invalid %s (value not shown): %s", rp.key, reason)
					} else {
						d.errf(rp.line, "invalid %s %q: %s", rp.key, rp.value, reason)
					}
					continue
				}
			}
			ps.props = append(ps.props, prop(rp))
		}
		for _, k := range sortedKeys(keys) {
			if keys[k].required {
				if _, ok := seen[k]; !ok {
					d.errf(raw.line, "%s section '%s' is missing required property '%s'", raw.typ, raw.id, k)
				}
			}
		}
		out = append(out, ps)
	}
	return out
}

func sortedKeys(m map[string]keyDef) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func keyList(m map[string]keyDef) string { return strings.Join(sortedKeys(m), ", ") }

// Parse validates a public and a private notifications file given as
// bytes; pubName and privName are used in diagnostics (privName also in
// messages about a missing private section). Errors and warnings are
// reported like Load's. Parse reads no file except to resolve a sendmail
// target's sendmail-path.
func Parse(pubName string, pub []byte, privName string, priv []byte, opt LoadOptions) (*Config, error) {
	var ds Diagnostics
	pd := diags{list: &ds, file: pubName}
	vd := diags{list: &ds, file: privName}

	pubSecs := parseFile(pd, pub, false)
	privSecs := parseFile(vd, priv, true)

	// Names are unique across all section types. Proxmox silently lets a
	// later section overwrite an earlier one; we refuse.
	byName := map[string]*parsedSection{}
	var secs []*parsedSection
	for _, s := range pubSecs {
		if prev, dup := byName[s.id]; dup {
			pd.errf(s.line, "duplicate section name '%s': already used by the %s section on line %d", s.id, prev.typ, prev.line)
			continue
		}
		byName[s.id] = s
		secs = append(secs, s)
	}

	// Built-ins: present and identical → builtin; present otherwise →
	// modified-builtin; absent → injected.
	origin := map[*parsedSection]string{}
	for _, b := range builtins(opt.Flavor) {
		if s, ok := byName[b.id]; ok {
			if s.sameAs(b) {
				origin[s] = OriginBuiltin
			} else {
				origin[s] = OriginModifiedBuiltin
			}
			continue
		}
		byName[b.id] = b
		secs = append(secs, b)
		origin[b] = OriginBuiltin
	}

	cfg := &Config{Flavor: opt.Flavor, PublicFile: pubName, PrivateFile: privName}
	targets := map[string]*Section{}
	heraldSecs := map[string]*Section{}
	for _, s := range secs {
		o := origin[s]
		if o == "" {
			o = OriginUserCreated
		}
		d := pd
		if s.file == BuiltinFile {
			d = diags{list: &ds, file: BuiltinFile}
		}
		switch s.def.kind {
		case kindTarget:
			t := &Section{Type: s.typ, Name: s.id, File: s.file, Line: s.line, Origin: o, props: s.props}
			cfg.Targets = append(cfg.Targets, t)
			targets[t.Name] = t
		case kindHerald:
			h := &Section{Type: s.typ, Name: s.id, File: s.file, Line: s.line, Origin: o, props: s.props}
			cfg.Herald = append(cfg.Herald, h)
			heraldSecs[h.Name] = h
		case kindMatcher:
			cfg.Matchers = append(cfg.Matchers, buildMatcher(d, s, o))
		case kindGroup:
			g := &Group{Name: s.id, File: s.file, Line: s.line}
			for _, p := range s.values("endpoint") {
				g.Endpoints = append(g.Endpoints, p.value)
			}
			g.Filter, _ = s.get("filter")
			g.Comment, _ = s.get("comment")
			cfg.Groups = append(cfg.Groups, g)
			d.warnf(s.line, "group sections are legacy: Proxmox VE 8.1+ ignores them and 9.x refuses the file; rewrite as a matcher with one target line per member")
		case kindFilter:
			f := &Filter{Name: s.id, File: s.file, Line: s.line, Mode: "and"}
			if v, ok := s.get("min-severity"); ok {
				f.MinSeverity, _ = event.ParseSeverity(v)
				f.HasMinSeverity = true
			}
			if v, ok := s.get("mode"); ok {
				f.Mode = v
			}
			if v, ok := s.get("invert-match"); ok {
				f.Invert, _ = parseBool(v)
			}
			f.Comment, _ = s.get("comment")
			cfg.Filters = append(cfg.Filters, f)
			d.warnf(s.line, "filter sections are legacy: Proxmox VE 8.1+ ignores them and 9.x refuses the file; rewrite as a matcher with match-severity (min-severity warning = match-severity warning,error,unknown)")
		}
	}

	joinPrivate(pd, vd, privSecs, byName, targets, heraldSecs)
	checkReferences(pd, secs, byName)
	cfg.Targets = slices.DeleteFunc(cfg.Targets, func(t *Section) bool { return t.uninstantiated })
	checkTargets(pd, cfg, opt)
	checkFromAddresses(pd, cfg)
	checkUnusedPasswords(pd, cfg)
	for _, h := range cfg.Herald {
		sectionTypes[h.Type].build(pd, h, cfg)
	}
	for _, t := range cfg.Targets {
		if b := sectionTypes[t.Type].build; b != nil && t.File != BuiltinFile {
			b(pd, t, cfg) // targets: checks across keys (and the private part)
		}
	}
	if opt.Lenient {
		isolate(ds, cfg, map[string][]span{pubName: sectionSpans(pub, false), privName: sectionSpans(priv, true)})
	}

	ds.sort([]string{pubName, privName, BuiltinFile})
	if ds.HasErrors() {
		return nil, ds
	}
	cfg.Warnings = ds
	return cfg, nil
}

// buildMatcher converts a matcher section, parsing its rule values: a bad
// value is an error here, where Proxmox would load the file and then send
// nothing at all.
func buildMatcher(d diags, s *parsedSection, origin string) *Matcher {
	m := &Matcher{Name: s.id, File: s.file, Line: s.line, Mode: "all", Origin: origin}
	for _, p := range s.props {
		switch p.key {
		case "target":
			m.Targets = append(m.Targets, p.value)
		case "mode":
			m.Mode = p.value
		case "invert-match":
			m.Invert, _ = parseBool(p.value)
		case "disable":
			m.Disable, _ = parseBool(p.value)
		case "comment":
			m.Comment = p.value
		case "match-severity":
			r, err := match.ParseSeverity(p.value)
			if err != nil {
				d.errf(p.line, "%v", err)
				continue
			}
			m.Severity = append(m.Severity, r)
		case "match-field":
			r, err := match.ParseField(p.value)
			if err != nil {
				d.errf(p.line, "%v", err)
				continue
			}
			m.Fields = append(m.Fields, r)
		case "match-calendar":
			r, err := match.ParseCalendar(p.value)
			if err != nil {
				d.errf(p.line, "%v", err)
				continue
			}
			if !r.ProxmoxCompatible() {
				d.warnf(p.line, "match-calendar %q uses '-' between weekdays: Proxmox only accepts '..' (mon..fri) and would send no notification at all with this file", p.value)
			}
			m.Calendar = append(m.Calendar, r)
		}
	}
	m.labels = m.computeLabels()
	return m
}
