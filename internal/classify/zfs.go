package classify

import (
	"regexp"
	"strconv"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// OpenZFS's zed mails through its zedlets (cmd/zed/zed.d):
//
//	scrub_finish/resilver_finish-notify.sh  "ZFS scrub_finish event for POOL on HOST"
//	    body "ZFS has finished a scrub:", eid/class/host/time, zpool status
//	statechange-notify.sh  "ZFS device fault for pool POOL on HOST"
//	    body eid/class/state/host/time, vpath/vguid, "pool: POOL"
//	data-notify.sh         "ZFS data error for POOL on HOST"
//	generic-notify.sh      "ZFS SUBCLASS event for POOL on HOST"
//
// The body's "eid:" and "class:" lines are the zedlet layout keyed on.
// Without the subject (zed before OpenZFS 2.1 split it into words on the
// mail command line; a ZED_EMAIL_OPTS without @SUBJECT@ puts it into the
// body instead) the body's opening line of a zedlet stands in for it.

var zfsSubject = regexp.MustCompile(`^ZFS (?:(\S+) (event|error) for (\S+)|device fault for pool (\S+)) on (\S+)$`)

// zfsOpenings are the first body lines of the zedlets' notes.
var zfsOpenings = []string{"ZFS has finished a ", "ZFS has posted the following event:",
	"The number of I/O errors associated with a ZFS device", "The number of checksum errors associated with a ZFS device",
	"ZFS has detected that a device was removed.", "ZFS has detected a data error:", "A ZFS "}

func classifyZFS(m *mailconv.Message, ev *event.Event) bool {
	body := head(m.Body, 64<<10)
	subject := m.Subject
	if s, rest, ok := strings.Cut(body, "\n"); ok && strings.HasPrefix(s, "Subject: ZFS ") {
		subject, body = strings.TrimPrefix(s, "Subject: "), strings.TrimLeft(rest, "\n")
	}
	sm := zfsSubject.FindStringSubmatch(subject)
	if sm == nil {
		opening := false
		for _, o := range zfsOpenings {
			opening = opening || strings.HasPrefix(body, o)
		}
		if !opening {
			return false
		}
		sm = make([]string, 6)
	}
	class, okClass := reportValue(body, "class")
	if _, okEID := reportValue(body, "eid"); !okEID || !okClass || class == "" {
		return false
	}
	pool := sm[3]
	if sm[4] != "" {
		pool = sm[4]
	}
	if pool == "" { // no subject: scrub notes carry zpool status' "pool:"
		if v, ok := reportValue(body, "pool"); !ok || v == "" {
			return false
		}
	}
	if v, ok := reportValue(body, "pool"); ok && v != "" {
		// "POOL (GUID)" or just the name or GUID
		p, _, _ := strings.Cut(v, " ")
		pool = p
	}
	ev.SetField(event.FieldType, "zfs")
	set(ev, "event", class)
	set(ev, "pool", pool)
	switch {
	case class == "statechange" || sm[4] != "":
		state, _ := reportValue(body, "state")
		set(ev, "state", state)
		vdev, _ := reportValue(body, "vpath")
		if vdev == "" {
			vdev, _ = reportValue(body, "vguid")
		}
		if vdev != "" {
			set(ev, "vdev", vdev)
		}
		ev.Severity = zfsStateSeverity(state)
	case sm[2] == "error":
		ev.Severity = event.Error
	case strings.HasSuffix(class, "_finish"):
		ev.Severity = zfsFinishSeverity(body)
	default:
		ev.Severity = event.Info
		if st, ok := reportValue(body, "state"); ok {
			ev.Severity = max(ev.Severity, zfsStateSeverity(st))
		}
	}
	host := sm[5]
	if v, ok := reportValue(body, "host"); ok && v != "" {
		host = v
	}
	setHost(ev, host)
	return true
}

// zfsStateSeverity rates a vdev or pool state.
func zfsStateSeverity(state string) event.Severity {
	switch state {
	case "FAULTED", "UNAVAIL", "REMOVED":
		return event.Error
	case "DEGRADED":
		return event.Warning
	case "ONLINE", "AVAIL":
		return event.Info
	}
	return event.Warning
}

var zfsScanErrors = regexp.MustCompile(`(?m)^\s*scan: .* with (\d+) errors`)

// zfsFinishSeverity rates a scrub or resilver from the zpool status in the
// body: errors found or a pool not ONLINE is not a clean finish.
func zfsFinishSeverity(body string) event.Severity {
	sev := event.Info
	if st, ok := reportValue(body, "state"); ok {
		sev = zfsStateSeverity(st)
	}
	if sm := zfsScanErrors.FindStringSubmatch(body); sm != nil {
		if n, err := strconv.Atoi(sm[1]); err == nil && n > 0 {
			sev = event.Error
		}
	}
	if e, ok := reportValue(body, "errors"); ok && e != "" && e != "No known data errors" {
		sev = event.Error
	}
	return sev
}
