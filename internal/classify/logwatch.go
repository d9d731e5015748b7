package classify

import (
	"regexp"
	"strings"

	"herald/internal/event"
	"herald/internal/mailconv"
)

// logwatch's report opens with its banner
//
//	################### Logwatch 7.7 (07/22/22) ####################
//	       Processing Initiated: ...
//	       Logfiles for Host: HOST
//
// (older releases: "LogWatch") as the body's first line, and its default
// subject is "Logwatch for HOST (OS)".

var logwatchBanner = regexp.MustCompile(`^#{3,} (?i:logwatch) \S+ .*#{3,}[ \t]*(?:\n|$)`)

func classifyLogwatch(m *mailconv.Message, ev *event.Event) bool {
	body := head(m.Body, 4096)
	if !logwatchBanner.MatchString(strings.TrimLeft(body, " \t\n")) || !strings.Contains(body, "Processing Initiated:") {
		return false
	}
	ev.SetField(event.FieldType, "logwatch")
	ev.Severity = event.Info
	if v, ok := reportValue(body, "Logfiles for Host"); ok {
		setHost(ev, v)
	}
	return true
}
