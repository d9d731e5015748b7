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
	"strings"

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
}

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
	return r, nil
}

// Field returns the name of the metadata field the rule looks at.
func (r FieldRule) Field() string { return r.field }

// Exact reports whether the rule is an exact: rule (else regex:).
func (r FieldRule) Exact() bool { return r.exact }

// Match reports whether the event has the field and its value matches.
// An absent field never matches.
func (r FieldRule) Match(ev *event.Event) bool {
	v, ok := ev.Fields[r.field]
	if !ok {
		return false
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
