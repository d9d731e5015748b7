package classify

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailconv"
)

// User is a user classifier: a `classifier:` section of notifications.cfg.
type User struct {
	C *config.Classifier
}

// Name returns "classifier:NAME".
func (u User) Name() string { return "classifier:" + u.C.Name }

// Classify implements mailconv.Classifier: every given expression must
// match; named groups become fields, then the type, severity and field
// lines are applied (field values may refer to groups as $name).
func (u User) Classify(m *mailconv.Message, ev *event.Event) bool {
	c := u.C
	groups := map[string]string{}
	for _, r := range []struct {
		re   *regexp.Regexp
		text string
	}{{c.From, m.From}, {c.Subject, m.Subject}, {c.Body, m.Body}} {
		if r.re == nil {
			continue
		}
		loc := r.re.FindStringSubmatchIndex(r.text)
		if loc == nil {
			return false
		}
		for i, name := range r.re.SubexpNames() {
			if name != "" && loc[2*i] >= 0 {
				groups[name] = r.text[loc[2*i]:loc[2*i+1]]
			}
		}
	}
	for k, v := range groups {
		if k != event.FieldType {
			set(ev, k, v)
		}
	}
	if c.Type != "" {
		ev.SetField(event.FieldType, c.Type)
	}
	if c.HasSeverity {
		ev.Severity = c.Severity
	}
	for _, f := range c.Fields {
		set(ev, f.Name, expand(f.Value, groups))
	}
	return true
}

// expand replaces $name and ${name} with the named groups' text.
func expand(v string, groups map[string]string) string {
	if !strings.Contains(v, "$") {
		return v
	}
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '$' || i+1 == len(v) {
			sb.WriteByte(v[i])
			continue
		}
		j, name := i+1, ""
		if v[j] == '{' {
			end := strings.IndexByte(v[j:], '}')
			if end < 0 {
				sb.WriteByte(v[i])
				continue
			}
			name, j = v[j+1:j+end], j+end+1
		} else {
			for j < len(v) && (v[j] == '_' || v[j] >= 'a' && v[j] <= 'z' || v[j] >= 'A' && v[j] <= 'Z' || v[j] >= '0' && v[j] <= '9') {
				j++
			}
			name = v[i+1 : j]
		}
		if name == "" {
			sb.WriteByte(v[i])
			continue
		}
		sb.WriteString(groups[name])
		i = j - 1
	}
	return sb.String()
}

// maxFieldValue bounds a field value a classifier takes from a mail.
const maxFieldValue = 1024

// set sets a field to a value taken from the mail: one line of valid
// UTF-8, trimmed, at most maxFieldValue bytes.
func set(ev *event.Event, k, v string) {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if strings.ContainsAny(v, "\r\n\t\x00") {
		v = strings.Map(func(r rune) rune {
			switch r {
			case '\r', '\n', '\t':
				return ' '
			case 0:
				return -1
			}
			return r
		}, v)
	}
	v = strings.TrimSpace(v)
	if len(v) > maxFieldValue {
		n := maxFieldValue
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = v[:n]
	}
	ev.SetField(k, v)
}
