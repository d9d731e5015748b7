// Package match holds the values of a matcher's rule lines — match-severity,
// match-field and match-calendar — parsed exactly as Proxmox's
// proxmox-notify parses them, and evaluated against an event or a time.
// It does no I/O; the config loader parses rule values with it so that a bad
// value is a FILE:LINE error at load time (Proxmox would load the file and
// then send nothing at all).
package match

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"herald/internal/event"
)

// SeverityRule is one match-severity value: a comma list of severities, any
// of which matches.
type SeverityRule struct {
	text string
	set  uint8 // bit i set = event.Severity(i) listed
}

// ParseSeverity parses a match-severity value such as "warning,error".
// Items are trimmed; each must be one of the exact lower-case names
// info, notice, warning, error, unknown. An empty item ("info,") is an error,
// as it is in Proxmox.
func ParseSeverity(s string) (SeverityRule, error) {
	r := SeverityRule{text: s}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return SeverityRule{}, fmt.Errorf("invalid match-severity %q: empty item in the list", s)
		}
		sev, err := event.ParseSeverity(item)
		if err != nil {
			return SeverityRule{}, fmt.Errorf("invalid match-severity %q: unknown severity %q (want info, notice, warning, error or unknown)", s, item)
		}
		r.set |= 1 << uint(sev)
	}
	return r, nil
}

// Match reports whether the event's severity is in the list.
func (r SeverityRule) Match(ev *event.Event) bool {
	s := ev.Severity
	if s < event.Info || s > event.Unknown {
		return false
	}
	return r.set&(1<<uint(s)) != 0
}

// Severities returns the listed severities in Proxmox's order.
func (r SeverityRule) Severities() []event.Severity {
	var out []event.Severity
	for _, s := range event.Severities() {
		if r.set&(1<<uint(s)) != 0 {
			out = append(out, s)
		}
	}
	return out
}

// String returns the rule as it was written.
func (r SeverityRule) String() string { return r.text }

// FieldRule is one match-field value: exact:NAME=v1,v2 or regex:NAME=RE.
type FieldRule struct {
	text   string
	field  string
	exact  bool
	values []string       // exact: the accepted values
	re     *regexp.Regexp // regex: the compiled expression
	// lit and litOp are a regex's shortcut when the whole expression is a
	// literal, optionally anchored (litOp != litNone): a string comparison
	// then decides what the regex would, without running it.
	lit   string
	litOp literalOp
}

// literalOp says how a literal regex compares with a value.
type literalOp uint8

const (
	litNone     literalOp = iota // not a literal: run the regex
	litContains                  // abc: anywhere
	litPrefix                    // ^abc
	litSuffix                    // abc$
	litEqual                     // ^abc$
)

// validFieldName reports whether s is a SAFE_ID-shaped field name:
// ^[A-Za-z0-9_][A-Za-z0-9._-]*$ (match-field puts no length limit on it).
func validFieldName(s string) bool { return SafeID(s) }

// ParseField parses a match-field value. The exact: or regex: prefix is
// mandatory (Proxmox's syntax regex makes it look optional, but its
// conversion refuses a value without one). The value is split at the first
// '='. exact: values are split on ',' and trimmed; regex: values are Go
// regular expressions, matched unanchored.
func ParseField(s string) (FieldRule, error) {
	var exact bool
	var rest string
	switch {
	case strings.HasPrefix(s, "exact:"):
		exact, rest = true, s[len("exact:"):]
	case strings.HasPrefix(s, "regex:"):
		rest = s[len("regex:"):]
	default:
		return FieldRule{}, fmt.Errorf("invalid match-field %q: missing exact: or regex: prefix", s)
	}
	name, value, ok := strings.Cut(rest, "=")
	if !ok {
		return FieldRule{}, fmt.Errorf("invalid match-field %q: missing '=' between field name and value", s)
	}
	if !validFieldName(name) {
		return FieldRule{}, fmt.Errorf("invalid match-field %q: invalid field name %q (letters, digits, '_', '.', '-'; not starting with '.' or '-')", s, name)
	}
	r := FieldRule{text: s, field: name, exact: exact}
	if exact {
		for v := range strings.SplitSeq(value, ",") {
			r.values = append(r.values, strings.TrimSpace(v))
		}
		return r, nil
	}
	re, err := regexp.Compile(value)
	if err != nil {
		return FieldRule{}, fmt.Errorf("invalid match-field %q: invalid regex: %v", s, err)
	}
	r.re = re
	r.lit, r.litOp = literal(value)
	return r, nil
}

// literal recognises a regex that is a plain literal, optionally anchored
// with ^ and $ (without the m or s flags, ^ and $ mean start and end of the
// value), and returns the literal and how it compares. Case folding and any
// other operator fall back to the regex. A literal holding U+FFFD is left
// to the regex too, since the regex also matches it against invalid UTF-8.
func literal(expr string) (string, literalOp) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", litNone
	}
	re = re.Simplify()
	parts := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		parts = re.Sub
	}
	begin := len(parts) > 0 && parts[0].Op == syntax.OpBeginText
	if begin {
		parts = parts[1:]
	}
	end := len(parts) > 0 && parts[len(parts)-1].Op == syntax.OpEndText
	if end {
		parts = parts[:len(parts)-1]
	}
	if len(parts) != 1 || parts[0].Op != syntax.OpLiteral || parts[0].Flags&syntax.FoldCase != 0 {
		return "", litNone
	}
	lit := string(parts[0].Rune)
	if strings.ContainsRune(lit, utf8.RuneError) {
		return "", litNone
	}
	switch {
	case begin && end:
		return lit, litEqual
	case begin:
		return lit, litPrefix
	case end:
		return lit, litSuffix
	}
	return lit, litContains
}

// Field returns the name of the metadata field the rule looks at.
func (r FieldRule) Field() string { return r.field }

// Exact reports whether the rule is an exact: rule (else regex:).
func (r FieldRule) Exact() bool { return r.exact }

// Match reports whether the event has the field and its value matches.
// An absent field never matches.
func (r FieldRule) Match(ev *event.Event) bool {
	v, ok := ev.Fields[r.field]
	return ok && r.MatchValue(v)
}

// MatchValue reports whether a present field's value v matches the rule.
func (r FieldRule) MatchValue(v string) bool {
	switch r.litOp {
	case litContains:
		return strings.Contains(v, r.lit)
	case litPrefix:
		return strings.HasPrefix(v, r.lit)
	case litSuffix:
		return strings.HasSuffix(v, r.lit)
	case litEqual:
		return v == r.lit
	}
	if r.re != nil {
		return r.re.MatchString(v)
	}
	for _, want := range r.values {
		if v == want {
			return true
		}
	}
	return false
}

// String returns the rule as it was written.
func (r FieldRule) String() string { return r.text }

// MarshalText renders the rule as written (for JSON output of configs).
func (r SeverityRule) MarshalText() ([]byte, error) { return []byte(r.text), nil }

// MarshalText renders the rule as written (for JSON output of configs).
func (r FieldRule) MarshalText() ([]byte, error) { return []byte(r.text), nil }
