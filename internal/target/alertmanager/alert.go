package alertmanager

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"herald/internal/event"
)

// Alert is one element of the JSON array POST /api/v2/alerts takes
// (docs/alertmanager.md). A zero EndsAt is left out: Alertmanager then
// treats the alert as firing until its resolve_timeout passes without a
// re-send.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Bounds on what one event may put into an alert, so that a huge mail
// body or a script that sets thousands of fields cannot make a request
// Alertmanager refuses or a label set Prometheus chokes on.
const (
	// MaxLabels bounds the labels taken from event fields (alertname,
	// severity and hostname come on top).
	MaxLabels = 32
	// MaxLabelValue bounds a label value in bytes.
	MaxLabelValue = 256
	// MaxSummary bounds the summary annotation (the title) in bytes.
	MaxSummary = 1024
	// MaxDescription bounds the description annotation (the body) in bytes.
	MaxDescription = 16 << 10
)

// The heartbeat fields the monitors write (docs/alertmanager.md).
const (
	heartbeatType  = "heartbeat"
	fieldMonitor   = "monitor"
	fieldStatus    = "status"
	statusDown     = "down"
	statusUp       = "up"
	truncateMarker = "… [truncated]"
)

// Fixed label names: the event's type, severity and host name.
const (
	labelAlertname = "alertname"
	labelSeverity  = "severity"
	labelHostname  = "hostname"
)

// ValidLabelName reports whether s is a Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*) that is not reserved (a "__" prefix is
// Prometheus's own).
func ValidLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isHeartbeat reports whether ev is a monitor's heartbeat transition and
// which way it went.
func isHeartbeat(ev *event.Event) (monitor, status string, ok bool) {
	if ev.Type() != heartbeatType {
		return "", "", false
	}
	monitor, status = ev.Fields[fieldMonitor], ev.Fields[fieldStatus]
	if monitor == "" || (status != statusDown && status != statusUp) {
		return "", "", false
	}
	return monitor, status, true
}

// Labels returns the label set of ev's alert: alertname (the type; "herald"
// when the event has none), severity, hostname, and every other field whose
// name is a valid label name — only those in only when only is not nil. For
// a heartbeat the status field is left out, so that down and up name the
// same alert. Values are valid UTF-8, at most MaxLabelValue bytes; empty
// ones are left out, and at most MaxLabels fields are taken (in name order).
func Labels(ev *event.Event, only []string) map[string]string {
	l := map[string]string{labelSeverity: ev.Severity.String()}
	if typ := cut(ev.Type(), MaxLabelValue, ""); typ != "" {
		l[labelAlertname] = typ
	} else {
		l[labelAlertname] = "herald"
	}
	if h := cut(ev.Fields[event.FieldHostname], MaxLabelValue, ""); h != "" {
		l[labelHostname] = h
	}
	_, _, heartbeat := isHeartbeat(ev)
	names := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		switch {
		case k == event.FieldType, k == event.FieldHostname, k == labelAlertname, k == labelSeverity:
		case heartbeat && k == fieldStatus:
		case !ValidLabelName(k):
		case only != nil && !slices.Contains(only, k):
		default:
			names = append(names, k)
		}
	}
	slices.Sort(names)
	n := 0
	for _, k := range names {
		if n == MaxLabels {
			break
		}
		if v := cut(ev.Fields[k], MaxLabelValue, ""); v != "" {
			l[k] = v
			n++
		}
	}
	return l
}

// Annotations returns summary (the title) and description (the body),
// each bounded (MaxSummary, MaxDescription) and marked when cut.
func Annotations(ev *event.Event) map[string]string {
	a := map[string]string{}
	if s := cut(ev.Title, MaxSummary, truncateMarker); s != "" {
		a["summary"] = s
	}
	if d := cut(ev.Body, MaxDescription, truncateMarker); d != "" {
		a["description"] = d
	}
	return a
}

// cut makes s valid UTF-8 and at most limit bytes, ending in marker when it
// had to be shortened (marker included in the limit).
func cut(s string, limit int, marker string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= limit {
		return s
	}
	n := limit - len(marker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}
