package mailconv

import (
	"strings"

	"herald/internal/event"
	"herald/internal/mailroute"
)

// RecordEnvelope puts a mail event's envelope on it, so that matchers (and
// the admin reading events) see whom the mail was for and who sent it: the
// field to lists the envelope recipients the mail shows (blind copies stay
// hidden: mailroute.Shown), from the envelope sender (the header's From
// stays when the sender is null). An event without a mail is left alone.
func RecordEnvelope(ev *event.Event) {
	if ev.Mail == nil {
		return
	}
	if shown := mailroute.Shown(ev.Mail.Raw, ev.Mail.Recipients); len(shown) > 0 {
		ev.SetField(FieldTo, strings.Join(shown, ", "))
	}
	if ev.Mail.From != "" {
		ev.SetField(FieldFrom, ev.Mail.From)
	}
}

// Name is how logs and herald explain name a classification: the
// classifier's name, or "none".
func (c Classification) Name() string {
	if c.Classifier == "" {
		return "none"
	}
	return c.Classifier
}
