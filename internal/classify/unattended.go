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
// and ends with its "Unattended-upgrades log:".

var unattendedSubject = regexp.MustCompile(`^(?:\[[^\]]*\]\s*)*unattended-upgrades result for (\S+): (SUCCESS|FAILURE)$`)

func classifyUnattended(m *mailconv.Message, ev *event.Event) bool {
	sm := unattendedSubject.FindStringSubmatch(m.Subject)
	if sm == nil {
		return false
	}
	if !strings.HasPrefix(m.Body, "Unattended upgrade result:") && !strings.Contains(m.Body, "\nUnattended-upgrades log:") {
		return false
	}
	ev.SetField(event.FieldType, "apt")
	ev.SetField("result", sm[2])
	if sm[2] == "SUCCESS" {
		ev.Severity = event.Info
	} else {
		ev.Severity = event.Error
	}
	setHost(ev, sm[1])
	return true
}
