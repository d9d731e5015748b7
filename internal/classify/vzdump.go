package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// Proxmox VE's vzdump status mail (template vzdump-subject.txt.hbs):
//
//	Subject: vzdump backup status (HOST): backup successful|backup failed
//
// with a text part that has the "Details" table (VMID, Name, Status, ...)
// and the "Logs" section, or (older releases) the same table with a
// "Detailed backup logs:" section.

var vzdumpSubject = regexp.MustCompile(`^vzdump backup status \(([^)\s]+)\): (.+?)\s*$`)

func classifyVzdump(m *mailconv.Message, ev *event.Event) bool {
	sm := vzdumpSubject.FindStringSubmatch(m.Subject)
	if sm == nil {
		return false
	}
	body := head(m.Body, 64<<10)
	if !strings.Contains(body, "VMID") || !(strings.Contains(body, "Details\n=======") || strings.Contains(body, "Detailed backup logs:") || strings.Contains(body, "Logs\n====")) {
		return false
	}
	status := sm[2]
	ev.SetField(event.FieldType, "vzdump")
	set(ev, "job-status", status)
	if strings.Contains(status, "fail") {
		ev.Severity = event.Error
	} else {
		ev.Severity = event.Info
	}
	setHost(ev, sm[1])
	return true
}
