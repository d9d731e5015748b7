package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"herald/internal/event"
	"herald/internal/match"
)

// Origins of a section (Proxmox's synthetic "origin" property).
const (
	OriginBuiltin         = "builtin"          // injected, or identical to the built-in
	OriginModifiedBuiltin = "modified-builtin" // a built-in name the file redefines
	OriginUserCreated     = "user-created"
)

// prop is one public property line.
type prop struct {
	key, value string
	line       int
}

// secretProp is one private property line; its value is never a plain
// string so that no reflection-based printer can show it.
type secretProp struct {
	key   string
	value Secret
	line  int
}

// Section is one target section: its type (sendmail, smtp, gotify, webhook,
// ntfy, mbox, file, journal, exec), name, where it was defined, and its
// properties. Properties from the private file are reachable only as
// Secrets. Every printed form (fmt verbs, JSON) redacts them.
type Section struct {
	Type, Name, File string
	Line             int
	Origin           string

	props []prop
	priv  []secretProp
	// PrivFile/PrivLine locate the private section, when there is one.
	PrivFile string
	PrivLine int
	// uninstantiated: Proxmox would not build this target (its private
	// section is missing), so it is left out of Config.Targets.
	uninstantiated bool
}

// Get returns the value of a scalar property.
func (s *Section) Get(key string) (string, bool) {
	for _, p := range s.props {
		if p.key == key {
			return p.value, true
		}
	}
	return "", false
}

// List returns every value of an array property, in config order.
func (s *Section) List(key string) []string {
	var out []string
	for _, p := range s.props {
		if p.key == key {
			out = append(out, p.value)
		}
	}
	return out
}

// Bool returns a boolean property; absent means false. Values were checked
// at load time.
func (s *Section) Bool(key string) bool {
	v, ok := s.Get(key)
	if !ok {
		return false
	}
	b, _ := parseBool(v)
	return b
}

// Disabled reports whether the section has `disable true`.
func (s *Section) Disabled() bool { return s.Bool("disable") }

// LineOf returns the line of the first occurrence of key in the public
// file, or 0 when the section does not set it.
func (s *Section) LineOf(key string) int {
	for _, p := range s.props {
		if p.key == key {
			return p.line
		}
	}
	return 0
}

// Keys returns the public property keys in config order, each once.
func (s *Section) Keys() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range s.props {
		if !seen[p.key] {
			seen[p.key] = true
			out = append(out, p.key)
		}
	}
	return out
}

// Decoded returns the base64-decoded value of a scalar property (the
// webhook body). Values were checked at load time.
func (s *Section) Decoded(key string) (string, bool) {
	v, ok := s.Get(key)
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Headers returns the webhook `header name=N,value=BASE64` lines, decoded,
// in config order.
func (s *Section) Headers() []NameValue {
	var out []NameValue
	for _, v := range s.List("header") {
		name, value, reason := parseNameValue(v, false)
		if reason == "" {
			out = append(out, NameValue{Name: name, Value: value})
		}
	}
	return out
}

// Secret returns a scalar property of the private section (gotify token,
// smtp password, ntfy token).
func (s *Section) Secret(key string) (Secret, bool) {
	for _, p := range s.priv {
		if p.key == key {
			return p.value, true
		}
	}
	return Secret{}, false
}

// NamedSecrets returns the webhook `secret name=N,value=BASE64` lines of
// the private section, decoded, in config order.
func (s *Section) NamedSecrets(key string) []NamedSecret {
	var out []NamedSecret
	for _, p := range s.priv {
		if p.key != key {
			continue
		}
		name, value, reason := parseNameValue(p.value.Reveal(), true)
		if reason == "" {
			out = append(out, NamedSecret{Name: name, Value: NewSecret(value)})
		}
	}
	return out
}

// HasPrivate reports whether the section has a part in the private file.
func (s *Section) HasPrivate() bool { return s.PrivFile != "" }

// String summarises the section without any secret value.
func (s Section) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (%s:%d, %s)", s.Type, s.Name, s.File, s.Line, s.Origin)
	for _, p := range s.props {
		fmt.Fprintf(&b, " %s=%q", p.key, p.value)
	}
	for _, p := range s.priv {
		fmt.Fprintf(&b, " %s=%s", p.key, redacted)
	}
	return b.String()
}

// Format makes every fmt verb print String, so %v, %+v and %#v never walk
// the unexported fields (fmt would print a Secret inside them raw). Value
// receivers, so that printing a Section value is as safe as a pointer.
func (s Section) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalJSON writes the section with secrets as "<secret>".
func (s Section) MarshalJSON() ([]byte, error) {
	props := map[string]any{}
	for _, k := range s.Keys() {
		if def := sectionTypes[s.Type]; def != nil && def.keys[k].array {
			props[k] = s.List(k)
		} else {
			v, _ := s.Get(k)
			props[k] = v
		}
	}
	secrets := map[string]any{}
	for _, p := range s.priv {
		secrets[p.key] = redacted
	}
	return json.Marshal(struct {
		Type       string         `json:"type"`
		Name       string         `json:"name"`
		File       string         `json:"file"`
		Line       int            `json:"line"`
		Origin     string         `json:"origin"`
		Properties map[string]any `json:"properties"`
		Secrets    map[string]any `json:"secrets,omitempty"`
	}{s.Type, s.Name, s.File, s.Line, s.Origin, props, secrets})
}

// Matcher is one matcher section with its rule values parsed.
type Matcher struct {
	Name     string               `json:"name"`
	File     string               `json:"file"`
	Line     int                  `json:"line"`
	Mode     string               `json:"mode"`         // "all" (default) or "any"
	Invert   bool                 `json:"invert-match"` // invert-match
	Disable  bool                 `json:"disable"`
	Targets  []string             `json:"target"` // target or group names, config order
	Severity []match.SeverityRule `json:"match-severity,omitempty"`
	Fields   []match.FieldRule    `json:"match-field,omitempty"`
	Calendar []match.CalendarRule `json:"match-calendar,omitempty"`
	Comment  string               `json:"comment,omitempty"`
	Origin   string               `json:"origin"`

	labels []string // RuleLabels, computed once at load
}

// RuleLabels returns one label per rule line in evaluation order
// (severity, field, calendar), e.g. "match-severity warning,error".
func (m *Matcher) RuleLabels() []string {
	if len(m.labels) == len(m.Severity)+len(m.Fields)+len(m.Calendar) {
		return m.labels
	}
	return m.computeLabels()
}

func (m *Matcher) computeLabels() []string {
	out := make([]string, 0, len(m.Severity)+len(m.Fields)+len(m.Calendar))
	for _, r := range m.Severity {
		out = append(out, "match-severity "+r.String())
	}
	for _, r := range m.Fields {
		out = append(out, "match-field "+r.String())
	}
	for _, r := range m.Calendar {
		out = append(out, "match-calendar "+r.String())
	}
	return out
}

// HasRules reports whether the matcher has any rule line; a matcher without
// rules matches every event, even with invert-match.
func (m *Matcher) HasRules() bool {
	return len(m.Severity)+len(m.Fields)+len(m.Calendar) > 0
}

// Group is a legacy `group:` section: a name standing for several targets,
// optionally gated by a filter (proxmox-notify 0.1/0.2).
type Group struct {
	Name      string   `json:"name"`
	File      string   `json:"file"`
	Line      int      `json:"line"`
	Endpoints []string `json:"endpoint"`         // member target names
	Filter    string   `json:"filter,omitempty"` // filter name, "" for none
	Comment   string   `json:"comment,omitempty"`
}

// Filter is a legacy `filter:` section. It matches when the event's
// severity is at least MinSeverity (Proxmox's order info < notice <
// warning < error < unknown); without min-severity it is the neutral
// element of its mode (true for and, false for or); invert-match negates.
type Filter struct {
	Name           string         `json:"name"`
	File           string         `json:"file"`
	Line           int            `json:"line"`
	MinSeverity    event.Severity `json:"min-severity"`
	HasMinSeverity bool           `json:"has-min-severity"` // min-severity was set
	Mode           string         `json:"mode"`             // "and" (default) or "or"
	Invert         bool           `json:"invert-match"`
	Comment        string         `json:"comment,omitempty"`
}

// Match evaluates the filter for an event.
func (f *Filter) Match(ev *event.Event) bool {
	r := f.Mode != "or" // neutral element: true for and, false for or
	if f.HasMinSeverity {
		r = ev.Severity >= f.MinSeverity
	}
	return r != f.Invert
}
