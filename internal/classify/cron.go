package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// Debian cron (3.0pl1) mails a job's output with
//
//	From: root (Cron Daemon)
//	Subject: Cron <USER@HOST> COMMAND
//	X-Cron-Env: <VAR=value>   (one per variable)
//
// and appends " (failed)" to the subject when the job exited non-zero
// (the format "Cron <%s@%s> %s%s" in cron's do_command.c). MAILFROM
// changes the From header, so the classifier needs the subject form plus
// either an X-Cron-Env field or the "(Cron Daemon)" name.

var cronSubject = regexp.MustCompile(`^Cron <([^@<>\s]+)@([^<>\s]+)> (.*)$`)

func classifyCron(m *mailconv.Message, ev *event.Event) bool {
	sm := cronSubject.FindStringSubmatch(m.Subject)
	if sm == nil {
		return false
	}
	if !m.Header.Has("X-Cron-Env") && !strings.Contains(m.From, "(Cron Daemon)") {
		return false
	}
	command, failed := strings.CutSuffix(sm[3], " (failed)")
	ev.SetField(event.FieldType, "cron")
	set(ev, "user", sm[1])
	set(ev, "command", command)
	if failed {
		ev.SetField("job-status", "failed")
		ev.Severity = event.Error
	} else {
		ev.SetField("job-status", "ok")
		ev.Severity = event.Info
	}
	setHost(ev, sm[2])
	return true
}
