package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// Bacula's director mails a job report through its mailcommand, by default
//
//	bsmtp -h localhost -f "(Bacula) <%r>" -s "Bacula: %t %e of %c %l" %r
//
// The report ends the body with an indented block of "Key: value" lines
// ("  JobId:", "  Job:", ..., "  Termination:"). That block is the
// structure this classifier keys on; the subject, when in the default
// form, gives job-type, job-status, client and level exactly, else they
// come from the block (docs/classifiers.md).

// baculaStatuses are the %e texts (Bacula's job_status_to_str), longest
// first so that "OK -- with warnings" wins over "OK".
var baculaStatuses = []string{
	"OK -- with warnings", "Fatal Error", "Unknown term code", "Differences",
	"Incomplete", "Canceled", "Error", "OK",
}

// baculaMessageLine is a job message as the director mails it: time stamp
// (bstrftime's "%d-%b %H:%M", optionally with the year), daemon name, JobId.
var baculaMessageLine = regexp.MustCompile(`^\d{2}-[A-Z][a-z]{2}(?:-\d{4})? \d{2}:\d{2} \S+ JobId \d+: `)

var baculaJobSuffix = regexp.MustCompile(`\.\d{4}-\d{2}-\d{2}_\d{2}\.\d{2}\.\d{2}_\d+$`)

func classifyBacula(m *mailconv.Message, ev *event.Event) bool {
	body := m.Body
	term, ok := reportValue(body, "Termination")
	if !ok {
		return false
	}
	jobID, hasID := reportValue(body, "JobId")
	job, hasJob := reportValue(body, "Job")
	if !hasID && !hasJob {
		return false
	}
	// The report block's lines are indented by two blanks.
	if !strings.Contains(body, "\n  Termination:") && !strings.HasPrefix(body, "  Termination:") {
		return false
	}
	jobType, status, client, level, fromSubject := baculaSubject(m.Subject)
	// With another subject, the body must be the director's job messages
	// from the start ("02-Dec 05:57 vm-dir JobId 3: ..."), not a report
	// pasted into a mail.
	if !fromSubject && !baculaMessageLine.MatchString(head(body, 512)) {
		return false
	}
	ev.SetField(event.FieldType, "bacula")
	if !fromSubject {
		jobType, status = baculaTermination(term)
		client = baculaClient(body)
		level = baculaLevel(body)
	}
	if jobType != "" {
		set(ev, "job-type", jobType)
	}
	set(ev, "job-status", status)
	if client != "" {
		set(ev, "client", client)
	}
	if level != "" {
		set(ev, "level", level)
	}
	if hasJob && job != "" {
		set(ev, "job", baculaJobSuffix.ReplaceAllString(job, ""))
	}
	if hasID && jobID != "" {
		set(ev, "job-id", jobID)
	}
	ev.Severity = baculaSeverity(status)
	// bsmtp writes "Sender: user@hostname" and a Message-Id ending in
	// @hostname of the director's host; From is the recipient (%r).
	if h := addrHost(m.Header.Get("Sender")); h != "" {
		setHost(ev, h)
	} else if h := addrHost(m.MessageID); h != "" {
		setHost(ev, h)
	}
	return true
}

// baculaSubject parses "Bacula: %t %e of %c %l".
func baculaSubject(s string) (jobType, status, client, level string, ok bool) {
	rest, found := strings.CutPrefix(s, "Bacula: ")
	if !found {
		return "", "", "", "", false
	}
	for _, st := range baculaStatuses {
		i := strings.Index(rest, " "+st+" of ")
		if i <= 0 {
			continue
		}
		jobType = rest[:i]
		after := strings.TrimLeft(rest[i+len(st)+5:], " ")
		client, level, _ = strings.Cut(after, " ")
		if client == "" {
			return "", "", "", "", false
		}
		return jobType, st, client, strings.TrimSpace(level), true
	}
	return "", "", "", "", false
}

// baculaTermination maps the report's Termination text ("Backup OK",
// "*** Backup Error ***", "Verify Differences", "Backup failed --
// incomplete", ...) to the job type and the %e status.
func baculaTermination(term string) (jobType, status string) {
	t := strings.TrimSpace(strings.Trim(term, "* "))
	jobType, rest, _ := strings.Cut(t, " ")
	switch {
	case strings.HasPrefix(rest, "OK -- with warnings"), rest == "warnings", strings.HasPrefix(rest, "OK -- "):
		status = "OK -- with warnings"
	case rest == "OK":
		status = "OK"
	case strings.HasPrefix(rest, "Fatal Error"):
		status = "Fatal Error"
	case strings.HasPrefix(rest, "Error"):
		status = "Error"
	case strings.HasPrefix(rest, "Canceled"), strings.HasPrefix(rest, "Cancelled"):
		status = "Canceled"
	case strings.HasPrefix(rest, "Differences"):
		status = "Differences"
	case strings.Contains(rest, "incomplete"), strings.Contains(rest, "Incomplete"):
		status = "Incomplete"
	default:
		status = "Unknown term code"
	}
	return jobType, status
}

// baculaClient reads the Client line: `"name" version ...` (Bacula 9 and
// later) or a bare name.
func baculaClient(body string) string {
	v, ok := reportValue(body, "Client")
	if !ok {
		v, ok = reportValue(body, "Restore Client")
	}
	if !ok {
		return ""
	}
	if strings.HasPrefix(v, `"`) {
		if end := strings.IndexByte(v[1:], '"'); end >= 0 {
			return v[1 : end+1]
		}
	}
	name, _, _ := strings.Cut(v, " ")
	return name
}

// baculaLevel reads "Backup Level: Incremental, since=..." or "Verify
// Level: VolumeToCatalog".
func baculaLevel(body string) string {
	for _, k := range []string{"Backup Level", "Verify Level", "Level"} {
		if v, ok := reportValue(body, k); ok {
			v, _, _ = strings.Cut(v, ",")
			v, _, _ = strings.Cut(v, " (")
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func baculaSeverity(status string) event.Severity {
	switch status {
	case "OK":
		return event.Info
	case "OK -- with warnings", "Canceled", "Differences":
		return event.Warning
	case "Error", "Fatal Error", "Incomplete":
		return event.Error
	}
	return event.Warning
}
