package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// apticron mails "N DISTRO package update(s) for HOST" (or, with
// NOTIFY_NO_UPDATES, "No updates for HOST"); its report opens with
// "apticron report [DATE]" and ends with the signature "--\napticron".
// A custom subject (CUSTOM_SUBJECT) still has that body.

var apticronSubject = regexp.MustCompile(`^(?:\d+ \S+ package update\(s\)|No updates) for (\S+)`)

func classifyApticron(m *mailconv.Message, ev *event.Event) bool {
	body := m.Body
	report := strings.HasPrefix(body, "apticron report [") && (strings.HasSuffix(body, "\n--\napticron") || strings.Contains(body, "\napticron has detected that some packages need upgrading on:"))
	sm := apticronSubject.FindStringSubmatch(m.Subject)
	noUpdates := sm != nil && strings.HasPrefix(m.Subject, "No updates for ") && strings.HasPrefix(body, "No new packages today.")
	if !report && !noUpdates {
		return false
	}
	ev.SetField(event.FieldType, "package-updates")
	ev.Severity = event.Info
	if sm != nil {
		setHost(ev, sm[1])
	} else if _, after, ok := strings.Cut(body, "need upgrading on:\n"); ok {
		f := strings.Fields(head(after, 512))
		if len(f) > 0 {
			setHost(ev, f[0])
		}
	}
	return true
}
