package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// This file holds the checks that look across sections once a file is
// parsed: private parts joined to their public sections, references between
// sections, and per-target checks that need more than one value.

// joinPrivate attaches each private section to the public section of the
// same name and type.
func joinPrivate(pd, vd diags, privSecs []*parsedSection, byName map[string]*parsedSection, targets, herald map[string]*Section) {
	seen := map[string]int{}
	for _, ps := range privSecs {
		if first, dup := seen[ps.id]; dup {
			vd.errf(ps.line, "duplicate section name '%s': already used on line %d", ps.id, first)
			continue
		}
		seen[ps.id] = ps.line
		pub, ok := byName[ps.id]
		if !ok || pub.file == BuiltinFile {
			// Proxmox ignores it (docs/proxmox-compat.md).
			vd.warnf(ps.line, "%s section '%s' has no section of that name in %s: ignored, as Proxmox ignores it", ps.typ, ps.id, pd.file)
			continue
		}
		if pub.typ != ps.typ {
			vd.errf(ps.line, "section '%s' has type %s here but %s in %s", ps.id, ps.typ, pub.typ, pd.file)
			continue
		}
		t := targets[ps.id]
		if t == nil {
			t = herald[ps.id]
		}
		if t == nil {
			continue
		}
		t.PrivFile, t.PrivLine = vd.file, ps.line
		for _, p := range ps.props {
			t.priv = append(t.priv, secretProp{key: p.key, value: NewSecret(p.value), line: p.line})
		}
	}
	for _, t := range sortedTargets(targets) {
		def := sectionTypes[t.Type]
		if def.privRequired && t.PrivFile == "" {
			// Proxmox never instantiates it: nothing is sent to it.
			pd.warnf(t.Line, "%s target '%s' has no section in %s: Proxmox does not instantiate such a target, so herald sends nothing to it either", t.Type, t.Name, vd.file)
			t.uninstantiated = true
			continue
		}
		if t.Type == "smtp" {
			if _, ok := t.Get("username"); ok {
				if _, ok := t.Secret("password"); !ok {
					pd.errf(t.LineOf("username"), "smtp target '%s' sets username but %s has no password for it", t.Name, vd.file)
				}
			}
		}
	}
}

func sortedTargets(m map[string]*Section) []*Section {
	out := make([]*Section, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Section) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// checkReferences checks that matcher targets, group members and filter
// names point at sections of the right kind.
func checkReferences(pd diags, secs []*parsedSection, byName map[string]*parsedSection) {
	for _, s := range secs {
		d := pd
		if s.file == BuiltinFile {
			d.file = BuiltinFile
		}
		switch s.def.kind {
		case kindMatcher:
			for _, p := range s.values("target") {
				ref, ok := byName[p.value]
				if s.file == BuiltinFile && ok && ref.file != BuiltinFile && ref.def.kind != kindTarget && ref.def.kind != kindGroup {
					// Point at the user's section, not at a line of the
					// built-in text the user cannot see.
					pd.errf(ref.line, "'%s' must be a target: the built-in matcher '%s' sends to it", ref.id, s.id)
					continue
				}
				switch {
				case !ok:
					// Proxmox loads the file and skips the name when sending.
					d.warnf(p.line, "matcher '%s': target '%s' does not exist: skipped when sending, as Proxmox does", s.id, p.value)
				case ref.def.kind != kindTarget && ref.def.kind != kindGroup:
					d.errf(p.line, "matcher '%s': '%s' is a %s section, not a target", s.id, p.value, ref.typ)
				}
			}
		case kindGroup:
			for _, p := range s.values("endpoint") {
				ref, ok := byName[p.value]
				switch {
				case !ok:
					d.errf(p.line, "group '%s': endpoint '%s' does not exist", s.id, p.value)
				case ref.def.kind == kindGroup:
					d.errf(p.line, "group '%s': endpoint '%s' is a group; groups cannot contain groups", s.id, p.value)
				case ref.def.kind != kindTarget:
					d.errf(p.line, "group '%s': '%s' is a %s section, not a target", s.id, p.value, ref.typ)
				}
			}
		}
		if s.def.kind == kindTarget || s.def.kind == kindGroup {
			for _, p := range s.values("filter") {
				ref, ok := byName[p.value]
				switch {
				case !ok:
					d.errf(p.line, "filter '%s' does not exist", p.value)
				case ref.def.kind != kindFilter:
					d.errf(p.line, "'%s' is a %s section, not a filter", p.value, ref.typ)
				}
				if s.def.kind == kindTarget {
					d.warnf(p.line, "the filter property is legacy: Proxmox VE 8.1+ ignores it; use match-severity in the matchers instead")
				}
			}
		}
	}
}

// checkTargets runs per-target checks that need more than one value.
func checkTargets(pd diags, cfg *Config, opt LoadOptions) {
	for _, t := range cfg.Targets {
		if t.File == BuiltinFile {
			continue
		}
		if t.Type == "sendmail" && len(t.List("mailto")) == 0 && len(t.List("mailto-user")) == 0 {
			pd.warnf(t.Line, "sendmail target '%s' has neither mailto nor mailto-user: it cannot send anything", t.Name)
		}
		if p, ok := t.Get("sendmail-path"); ok {
			checkSendmailPath(pd, t.LineOf("sendmail-path"), p, opt.ShimPaths)
		}
	}
}

// shimName is the file name of herald's own sendmail shim.
const shimName = "herald-sendmail"

// checkSendmailPath refuses an external MTA path that leads back to
// herald's own shim: herald would hand the mail to itself forever.
func checkSendmailPath(d diags, line int, path string, shims []string) {
	loop := "sendmail-path points at herald's own sendmail shim: that would loop"
	if filepath.Base(path) == shimName {
		d.errf(line, "%s", loop)
		return
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		d.warnf(line, "sendmail-path %s cannot be resolved (%v); sending through this target will fail until it exists", path, unwrapPathErr(err))
		return
	}
	if filepath.Base(resolved) == shimName {
		d.errf(line, "%s (%s resolves to %s)", loop, path, resolved)
		return
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return
	}
	for _, shim := range shims {
		if si, err := os.Stat(shim); err == nil && os.SameFile(fi, si) {
			d.errf(line, "%s (%s is %s)", loop, path, shim)
			return
		}
	}
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
