package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// unattended-upgrades (send_summary_mail) mails
//
//	Subject: [package on hold][reboot required] unattended-upgrades result for HOST: SUCCESS|FAILURE
//
// (both flags optional) with a body that opens "Unattended upgrade result:"
// and ends with its "Unattended-upgrades log:". Releases before 1.2 wrote
// "unattended-upgrades result for 'HOST': True|False" and "Unattended
// upgrade returned: True"; True and False are reported as SUCCESS and
// FAILURE.

var unattendedSubject = regexp.MustCompile(`^(?:\[[^\]]*\]\s*)*unattended-upgrades result for '?([^'\s]+)'?: (SUCCESS|FAILURE|True|False)$`)

func classifyUnattended(m *mailconv.Message, ev *event.Event) bool {
	sm := unattendedSubject.FindStringSubmatch(m.Subject)
	if sm == nil {
		return false
	}
	if !strings.HasPrefix(m.Body, "Unattended upgrade result:") && !strings.HasPrefix(m.Body, "Unattended upgrade returned:") &&
		!strings.Contains(m.Body, "\nUnattended-upgrades log:") {
		return false
	}
	result := sm[2]
	switch result {
	case "True":
		result = "SUCCESS"
	case "False":
		result = "FAILURE"
	}
	ev.SetField(event.FieldType, "apt")
	ev.SetField("result", result)
	if result == "SUCCESS" {
		ev.Severity = event.Info
	} else {
		ev.Severity = event.Error
	}
	setHost(ev, sm[1])
	return true
}
