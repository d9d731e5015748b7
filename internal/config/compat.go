package config

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
)

// Loading files as Proxmox loads them (docs/proxmox-compat.md). Two rules,
// kept apart:
//
//   - Parse and Load (`herald check`, reload) judge a file as Proxmox does:
//     what Proxmox refuses is an error; what Proxmox loads is at most a
//     warning. A target value that cannot work (a from-address that is no
//     address) is a warning, and the target is broken (Config.Broken).
//   - With LoadOptions.Lenient (the daemon at start-up) an error inside a
//     target section disables that target only: the error becomes a
//     warning and the target is broken, so its deliveries fail with the
//     reason while every other target runs. An error in a matcher, or one
//     that belongs to no section, still fails the load: routing would be
//     ambiguous.

// BrokenTarget is a target that stays configured (matchers route to it) but
// cannot deliver: every delivery to it fails at once with Reason.
type BrokenTarget struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// BrokenReason returns why the named target is broken, if it is.
func (c *Config) BrokenReason(name string) (string, bool) {
	for _, b := range c.Broken {
		if b.Name == name {
			return b.Reason, true
		}
	}
	return "", false
}

func (c *Config) markBroken(name, reason string) {
	for i, b := range c.Broken {
		if b.Name == name {
			c.Broken[i].Reason += "; " + reason
			return
		}
	}
	c.Broken = append(c.Broken, BrokenTarget{Name: name, Reason: reason})
}

// ParseFromAddress reads a from-address as Proxmox accepts it: a bare
// address or local part ("root", "pve@example.com", qualified later) or the
// display-name form "Proxmox VE <pve@example.com>". It returns the display
// name ("" when none) and the address. A value that is no address, such as
// a template placeholder "<FROM_ADDRESS>", is an error.
func ParseFromAddress(v string) (name, addr string, err error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", "", fmt.Errorf("empty address")
	}
	if hasControl(v) {
		return "", "", fmt.Errorf("%q contains a control character", v)
	}
	if !strings.ContainsAny(v, " \t<>\"(),;:") {
		return "", v, nil // a bare address or local part
	}
	a, perr := mail.ParseAddress(v)
	if perr != nil {
		if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") && !strings.Contains(v, "@") {
			return "", "", fmt.Errorf("%q looks like a placeholder left from a template, not an address", v)
		}
		return "", "", fmt.Errorf("%q is not an address: %v", v, strings.TrimPrefix(perr.Error(), "mail: "))
	}
	return a.Name, a.Address, nil
}

// checkFromAddresses breaks the mail targets whose from-address cannot
// work; Proxmox loads such a file and fails each send.
func checkFromAddresses(pd diags, cfg *Config) {
	for _, t := range cfg.Targets {
		if t.Type != "sendmail" && t.Type != "smtp" {
			continue
		}
		v, ok := t.Get("from-address")
		if !ok {
			continue
		}
		if _, _, err := ParseFromAddress(v); err != nil {
			reason := fmt.Sprintf("from-address %v", err)
			pd.warnf(t.LineOf("from-address"), "%s target '%s': %s: the target is disabled (its deliveries fail with this reason)", t.Type, t.Name, reason)
			cfg.markBroken(t.Name, reason)
		}
	}
}

// checkUnusedPasswords warns about an smtp password without a username:
// Proxmox authenticates only when a username is set, so the password is
// not used (and herald does not use it either).
func checkUnusedPasswords(pd diags, cfg *Config) {
	for _, t := range cfg.Targets {
		if t.Type != "smtp" {
			continue
		}
		if _, ok := t.Get("username"); ok {
			continue
		}
		if pw, ok := t.Secret("password"); ok && !pw.IsEmpty() {
			pd.warnf(t.Line, "smtp target '%s' has a password in %s but no username: it is not used (Proxmox authenticates only with a username)", t.Name, t.PrivFile)
		}
	}
}

// span is the lines of one section in one file.
type span struct {
	typ, id  string
	from, to int // header line up to the line before the next header
}

// sectionSpans lists the sections of a file as the lexer sees them.
func sectionSpans(data []byte, private bool) []span {
	var ds Diagnostics
	raws := lexSections(diags{list: &ds}, data, private)
	out := make([]span, len(raws))
	for i, r := range raws {
		out[i] = span{typ: r.typ, id: r.id, from: r.line, to: 1 << 30}
		if i > 0 {
			out[i-1].to = r.line - 1
		}
	}
	return out
}

// isolate implements LoadOptions.Lenient: every error inside a target
// section (public or private part) or inside a section of an unknown type
// becomes a warning, and the target is broken. Other errors stay.
func isolate(ds Diagnostics, cfg *Config, files map[string][]span) {
	for i, d := range ds {
		if d.Warning || d.Line == 0 {
			continue
		}
		j := slices.IndexFunc(files[d.File], func(s span) bool { return d.Line >= s.from && d.Line <= s.to })
		if j < 0 {
			continue
		}
		s := files[d.File][j]
		def := sectionTypes[s.typ]
		switch {
		case def == nil:
			ds[i].Warning = true
			ds[i].Msg += " (section ignored)"
		case def.kind == kindTarget:
			ds[i].Warning = true
			ds[i].Msg += fmt.Sprintf(" (target '%s' disabled)", s.id)
			if cfg.Target(s.id) != nil { // else not instantiated anyway
				cfg.markBroken(s.id, d.Error())
			}
		}
	}
}
