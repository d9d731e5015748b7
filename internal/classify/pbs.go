package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// Proxmox Backup Server's job mails (legacy-sendmail mode and its
// notification system's sendmail target alike) are rendered from its
// Handlebars templates (templates/default/*-subject.txt.hbs and
// *-body.txt.hbs). Each type has a fixed subject and body layout; the
// body names the datastore and job on "Key: value" lines and ends with
// "Please visit the web interface for further details:" and
// "<https://FQDN:PORT/#...>". Types, fields and severities are those of
// the PBS notification docs (docs/classifiers.md).

type pbsKind struct {
	typ     string
	subject *regexp.Regexp
	// body is a line every mail of this kind has.
	body func(body string) bool
}

var pbsKinds = []pbsKind{
	{"gc", regexp.MustCompile(`^Garbage Collect Datastore '(?P<datastore>[^']+)' (?P<result>successful|failed)$`),
		func(b string) bool {
			return hasLine(b, "Garbage collection successful.") || strings.Contains(b, "Garbage collection failed: ")
		}},
	{"prune", regexp.MustCompile(`^Pruning datastore '(?P<datastore>[^']+)' (?P<result>successful|failed)$`),
		func(b string) bool {
			return hasLine(b, "Pruning successful.") || strings.Contains(b, "Pruning failed: ")
		}},
	{"verification", regexp.MustCompile(`^Verify Datastore '(?P<datastore>[^']+)' (?P<result>successful|failed)$`),
		func(b string) bool {
			return hasLine(b, "Verification successful.") || hasLine(b, "Verification failed on these snapshots/groups:")
		}},
	{"sync", regexp.MustCompile(`^Sync (?:remote '[^']+' datastore|local datastore) '[^']+' (?P<result>successful|failed)$`),
		func(b string) bool {
			return hasLine(b, "Synchronization successful.") || strings.Contains(b, "Synchronization failed: ")
		}},
	{"tape-backup", regexp.MustCompile(`^Tape Backup (?:'(?P<jobid>[^']+)' )?datastore '(?P<datastore>[^']+)' (?P<result>successful|failed)$`),
		func(b string) bool {
			return hasLine(b, "Tape Backup successful.") || strings.Contains(b, "Tape Backup failed: ")
		}},
	{"tape-load", regexp.MustCompile(`^Load Media '(?P<media>[^']*)' request for (?:drive|changer) '[^']*'$`),
		func(b string) bool { _, ok := reportValue(b, "Media"); return ok }},
	{"acme", regexp.MustCompile(`^Could not renew certificate$`),
		func(b string) bool {
			return strings.HasPrefix(b, "Proxmox Backup Server was not able to renew a TLS certificate.")
		}},
	{"package-updates", regexp.MustCompile(`^New software packages available \((?P<host>[^)\s]+)\)$`),
		func(b string) bool {
			// PBS: "Proxmox Backup Server has the following updates
			// available:"; PVE: "The following updates are available:".
			h := head(b, 512)
			return strings.Contains(h, " has the following updates available:") || strings.HasPrefix(h, "The following updates are available:")
		}},
}

var pbsURL = regexp.MustCompile(`(?m)^<https://([^:/>\s]+):\d+/#[^>]*>$`)

func classifyPBS(m *mailconv.Message, ev *event.Event) bool {
	for _, k := range pbsKinds {
		sm := k.subject.FindStringSubmatch(m.Subject)
		if sm == nil {
			continue
		}
		body := head(m.Body, 256<<10)
		if !k.body(body) {
			return false
		}
		return pbsEvent(m, ev, k, sm, body)
	}
	return false
}

func pbsEvent(m *mailconv.Message, ev *event.Event, k pbsKind, sm []string, body string) bool {
	group := func(name string) string {
		if i := k.subject.SubexpIndex(name); i > 0 {
			return sm[i]
		}
		return ""
	}
	ev.SetField(event.FieldType, k.typ)
	switch k.typ {
	case "tape-load":
		ev.Severity = event.Notice
	case "acme":
		ev.Severity = event.Error
	case "package-updates":
		ev.Severity = event.Info
	default:
		if group("result") == "successful" {
			ev.Severity = event.Info
		} else {
			ev.Severity = event.Error
		}
	}
	datastore := group("datastore")
	if v, ok := reportValue(body, "Datastore"); ok && v != "" {
		datastore = v
	}
	if datastore != "" && k.typ != "tape-load" {
		set(ev, "datastore", datastore)
	}
	jobID := group("jobid")
	if v, ok := reportValue(body, "Job ID"); ok && v != "" {
		jobID = v
	}
	if jobID != "" {
		set(ev, "job-id", jobID)
	}
	if k.typ == "tape-backup" {
		if v, ok := reportValue(body, "Tape Pool"); ok && v != "" {
			set(ev, "media-pool", v)
		}
	}
	switch {
	case group("host") != "":
		setHost(ev, group("host"))
	case pbsURL.MatchString(body):
		setHost(ev, pbsURL.FindStringSubmatch(body)[1])
	default:
		setHost(ev, addrHost(m.From))
	}
	return true
}
