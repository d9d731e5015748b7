package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// mdadm --monitor (Monitor.c) mails
//
//	Subject: EVENT event on DEVICE:HOST
//
//	This is an automatically generated mail message from mdadm
//	running on HOST
//
//	A EVENT event had been detected on md device DEVICE.
//
//	It could be related to component device COMPONENT.
//
// (older releases: "sub-device"; newer ones drop the "from mdadm running
// on" line), then "Faithfully yours, etc." and /proc/mdstat.

var (
	mdadmSubject = regexp.MustCompile(`^([A-Za-z]+) event on (\S+):([^:\s]+)$`)
	mdadmEvent   = regexp.MustCompile(`(?m)^An? ([A-Za-z]+) event had been detected on md device (\S+?)\.?$`)
	mdadmComp    = regexp.MustCompile(`(?m)^It could be related to (?:component |sub-)device (\S+?)\.?$`)
)

func classifyMdadm(m *mailconv.Message, ev *event.Event) bool {
	sm := mdadmSubject.FindStringSubmatch(m.Subject)
	if sm == nil {
		return false
	}
	body := head(m.Body, 8192)
	bm := mdadmEvent.FindStringSubmatch(body)
	if bm == nil || bm[1] != sm[1] || bm[2] != sm[2] || !strings.Contains(body, "This is an automatically generated mail message") {
		return false
	}
	ev.SetField(event.FieldType, "mdadm")
	set(ev, "event", sm[1])
	set(ev, "array", sm[2])
	if cm := mdadmComp.FindStringSubmatch(body); cm != nil {
		set(ev, "component", cm[1])
	}
	switch sm[1] {
	case "Fail", "FailSpare", "DeviceDisappeared":
		ev.Severity = event.Error
	case "DegradedArray", "SparesMissing":
		ev.Severity = event.Warning
	case "TestMessage":
		ev.Severity = event.Notice
	default:
		ev.Severity = event.Info
	}
	setHost(ev, sm[3])
	return true
}
