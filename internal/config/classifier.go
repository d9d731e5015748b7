package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"herald/internal/event"
)

// A `classifier: NAME` section (herald's own; docs/classifiers.md) turns
// mails that match its regular expressions into typed events. User
// classifiers run before the built-in ones, in file order.
func init() {
	registerType("classifier", &typeDef{kind: kindHerald, keys: common(map[string]keyDef{
		"match-from":    {},
		"match-subject": {},
		"match-body":    {},
		"type":          {check: checkClassifierType},
		"severity":      {check: checkSeverity},
		"field":         {array: true},
	}), build: buildClassifier})
	// herald.cfg: classifiers-disable NAME (repeatable, or several names
	// separated by blanks or commas).
	daemonKeys["classifiers-disable"] = daemonKey{list: true, parse: func(d *Daemon, v string, first bool) string {
		if first {
			d.ClassifiersDisable = nil
		}
		for _, n := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !slices.Contains(BuiltinClassifiers, n) {
				return fmt.Sprintf("%q is no built-in classifier (built-ins: %s)", n, strings.Join(BuiltinClassifiers, ", "))
			}
			d.ClassifiersDisable = append(d.ClassifiersDisable, n)
		}
		return ""
	}}
}

// BuiltinClassifiers are the names of the built-in mail classifiers, in the
// order they run (package classify holds them; its tests keep the two in
// step).
var BuiltinClassifiers = []string{"bacula", "smartd", "cron", "unattended-upgrades", "apticron",
	"logwatch", "mdadm", "zfs", "vzdump", "proxmox-backup"}

// Classifier is one user classifier section. Every given match-* regular
// expression must match (From header, decoded Subject, text body); named
// groups become fields, and field values may use them as $name or ${name}.
type Classifier struct {
	Name    string         `json:"name"`
	File    string         `json:"file"`
	Line    int            `json:"line"`
	From    *regexp.Regexp `json:"match-from,omitempty"`
	Subject *regexp.Regexp `json:"match-subject,omitempty"`
	Body    *regexp.Regexp `json:"match-body,omitempty"`
	// Type is the event type to set ("" keeps system-mail).
	Type string `json:"type,omitempty"`
	// Severity is set when HasSeverity.
	Severity    event.Severity `json:"severity"`
	HasSeverity bool           `json:"has-severity"`
	// Fields are the `field K=V` lines in config order; V may name groups.
	Fields  []NameValue `json:"field,omitempty"`
	Disable bool        `json:"disable,omitempty"`
	Comment string      `json:"comment,omitempty"`
}

// maxClassifierRegexp bounds a match-* expression; Go's regexps run in
// linear time, this keeps their compiled size sane too.
const maxClassifierRegexp = 4096

func checkClassifierType(v string) string {
	if !fieldNameRe.MatchString(v) {
		return "must be a type name of letters, digits, '-', '_' and '.'"
	}
	return ""
}

var fieldNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func buildClassifier(d diags, s *Section, cfg *Config) {
	c := &Classifier{Name: s.Name, File: s.File, Line: s.Line, Disable: s.Disabled()}
	c.Comment, _ = s.Get("comment")
	c.Type, _ = s.Get("type")
	if v, ok := s.Get("severity"); ok {
		c.Severity, _ = event.ParseSeverity(v)
		c.HasSeverity = true
	}
	groups := map[string]bool{}
	for _, k := range []struct {
		key string
		dst **regexp.Regexp
	}{{"match-from", &c.From}, {"match-subject", &c.Subject}, {"match-body", &c.Body}} {
		v, ok := s.Get(k.key)
		if !ok {
			continue
		}
		if len(v) > maxClassifierRegexp {
			d.errf(s.LineOf(k.key), "%s is longer than %d bytes", k.key, maxClassifierRegexp)
			continue
		}
		re, err := regexp.Compile(v)
		if err != nil {
			d.errf(s.LineOf(k.key), "invalid %s regular expression: %s", k.key, regexpReason(err))
			continue
		}
		for _, g := range re.SubexpNames() {
			if g != "" {
				groups[g] = true
			}
		}
		*k.dst = re
	}
	if s.LineOf("match-from")+s.LineOf("match-subject")+s.LineOf("match-body") == 0 {
		d.errf(s.Line, "classifier '%s' needs at least one of match-from, match-subject, match-body (it would match every mail)", s.Name)
	}
	if s.LineOf("type")+s.LineOf("severity")+s.LineOf("field") == 0 {
		d.errf(s.Line, "classifier '%s' sets nothing: give type, severity or field", s.Name)
	}
	for _, v := range s.List("field") {
		name, value, ok := strings.Cut(v, "=")
		line := lineOfValue(s, "field", v)
		switch {
		case !ok:
			d.errf(line, "invalid field %q: must be NAME=VALUE", v)
			continue
		case !fieldNameRe.MatchString(name):
			d.errf(line, "invalid field %q: the name must be letters, digits, '-', '_' and '.'", v)
			continue
		case name == event.FieldType:
			d.errf(line, "invalid field %q: set the type with the type key", v)
			continue
		}
		for _, ref := range groupRefRe.FindAllStringSubmatch(value, -1) {
			g := ref[1] + ref[2]
			if !groups[g] {
				d.errf(line, "field %s refers to $%s, which no match-* expression names as a group", name, g)
			}
		}
		c.Fields = append(c.Fields, NameValue{Name: name, Value: value})
	}
	cfg.Classifiers = append(cfg.Classifiers, c)
}

// groupRefRe finds $name and ${name} references (regexp.Expand's syntax).
var groupRefRe = regexp.MustCompile(`\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z_][A-Za-z0-9_]*))`)

// regexpReason is the syntax error without Go's "error parsing regexp: "
// prefix.
func regexpReason(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// lineOfValue finds the line of one value of an array key.
func lineOfValue(s *Section, key, value string) int {
	for _, p := range s.props {
		if p.key == key && p.value == value {
			return p.line
		}
	}
	return s.Line
}
