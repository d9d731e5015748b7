package config

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// rawProp is one "key value" line of a section, as written.
type rawProp struct {
	key, value string
	line       int
}

// rawSection is one section as the grammar sees it, before any schema.
type rawSection struct {
	typ, id string
	line    int // the header line
	props   []rawProp
}

// commentWarning is the warning every comment line earns: Proxmox's Rust
// parser has no comments, so a file with one no longer loads there.
const commentWarning = "comment lines are a herald extension; Proxmox cannot read this file any more"

// splitLines splits like Rust's str::lines: on '\n', dropping one trailing
// '\r' per line and the empty piece after a final newline.
func splitLines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	parts := bytes.Split(data, []byte("\n"))
	if len(parts[len(parts)-1]) == 0 {
		parts = parts[:len(parts)-1]
	}
	lines := make([]string, len(parts))
	for i, p := range parts {
		lines[i] = string(bytes.TrimSuffix(p, []byte("\r")))
	}
	return lines
}

// parseHeader splits "type: id" the way proxmox-section-config does: the
// first character must be a letter, the line is split at the first ':',
// both parts trimmed, the type must not be empty.
func parseHeader(line string) (typ, id string, ok bool) {
	r, _ := utf8.DecodeRuneInString(line)
	if line == "" || !unicode.IsLetter(r) {
		return "", "", false
	}
	typ, id, found := strings.Cut(line, ":")
	if !found {
		return "", "", false
	}
	typ, id = strings.TrimSpace(typ), strings.TrimSpace(id)
	if typ == "" {
		return "", "", false
	}
	return typ, id, true
}

// lexSections applies the section-config grammar of Proxmox's Rust
// proxmox-section-config (docs/proxmox-notify.md §1.2) and collects every syntax
// problem instead of stopping at the first. Lines whose first non-blank
// character is '#' are skipped with a warning (herald extension). When
// secret is set (the private file), messages never quote the text of a
// line, since it may hold a password.
func lexSections(d diags, data []byte, secret bool) []rawSection {
	const (
		before   = iota // between sections
		inside          // after a header, reading properties
		skipping        // after a broken header: ignore its indented lines
	)
	var (
		out   []rawSection
		cur   *rawSection
		state = before
	)
	finish := func() {
		if cur != nil {
			out = append(out, *cur)
			cur = nil
		}
	}
	startHeader := func(n int, line string) {
		typ, id, ok := parseHeader(line)
		if !ok {
			d.errf(n, "syntax error: expected a section header such as \"sendmail: NAME\"")
			state = skipping
			return
		}
		cur = &rawSection{typ: typ, id: id, line: n}
		state = inside
	}
	for i, line := range splitLines(data) {
		n := i + 1
		if !utf8.ValidString(line) {
			d.errf(n, "line is not valid UTF-8")
			continue
		}
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			d.warnf(n, commentWarning)
			continue
		}
		first, _ := utf8.DecodeRuneInString(line)
		indented := unicode.IsSpace(first)
		switch state {
		case before, skipping:
			if trimmed == "" {
				state = before
				continue
			}
			if indented {
				if state == before {
					d.errf(n, "syntax error: property line outside of a section (no section header above it)")
					state = skipping
				}
				continue
			}
			startHeader(n, line)
		case inside:
			if trimmed == "" {
				finish()
				state = before
				continue
			}
			if !indented {
				if _, _, ok := parseHeader(line); ok {
					// Proxmox needs a blank line between sections; say so,
					// then read on as if it were there to find more problems.
					d.errf(n, "syntax error: a blank line must separate sections (before this header)")
					finish()
					startHeader(n, line)
					continue
				}
				d.errf(n, "syntax error: property lines must be indented (start with a space or tab)")
				continue
			}
			rest := strings.TrimLeftFunc(line, unicode.IsSpace)
			k := strings.IndexFunc(rest, unicode.IsSpace)
			if k < 0 {
				if secret {
					d.errf(n, "syntax error: property without a value (line not shown: the private file holds secrets)")
				} else {
					d.errf(n, "syntax error: property '%s' has no value", rest)
				}
				continue
			}
			cur.props = append(cur.props, rawProp{key: rest[:k], value: strings.TrimSpace(rest[k:]), line: n})
		}
	}
	finish()
	return out
}
