package delivery

import (
	"fmt"
	"strings"
	"time"

	"herald/internal/event"
	"herald/internal/target/httpsend"
)

// FailedType is the type of herald's own event about a delivery that gave
// up (a dead letter): docs/flow.md, step 6.
const FailedType = "delivery-failed"

// FailedOptions is what the daemon adds to a dead letter's event.
type FailedOptions struct {
	// Hostname is the host herald runs on (the event's hostname field).
	Hostname string
	// At is when the delivery gave up; the event's time is At to the second.
	At time.Time
	// Secrets are masked in the last error: the target masked its own, but
	// a server may have echoed another target's (a shared token), and this
	// event goes to every other target.
	Secrets []string
	// Remote are the recipients the failed delivery was to reach beyond
	// this host (the relay's): they are named, as herald sends no bounce
	// and this event is the notice.
	Remote []string
}

// FailedEvent is herald's own event about d, which failed for good; orig is
// the event d was delivering (nil when unreadable). It is nil when orig is
// itself such an event: a failed delivery-failed event does not beget
// another. The caller routes it like any other event, never to d.Target.
func FailedEvent(d Delivery, orig *event.Event, o FailedOptions) *event.Event {
	if orig != nil && orig.Type() == FailedType {
		return nil
	}
	lastErr := httpsend.Mask(d.LastError, o.Secrets...)
	ev := &event.Event{
		ID:        event.NewID(),
		Timestamp: o.At.Truncate(time.Second),
		Severity:  event.Error,
		Title:     fmt.Sprintf("herald on %s: delivery to %s failed", o.Hostname, d.Target),
		Body: fmt.Sprintf("herald gave up delivering event %s to target %s after %d attempts.\nLast error: %s\n",
			d.EventID, d.Target, d.Attempts, lastErr),
		Fields: map[string]string{
			event.FieldType:     FailedType,
			event.FieldHostname: o.Hostname,
			"target":            d.Target,
			"event-id":          d.EventID,
			"delivery-id":       d.ID,
		},
	}
	if len(o.Remote) > 0 {
		ev.Fields["recipients"] = strings.Join(o.Remote, ", ")
		ev.Body += "Recipients: " + strings.Join(o.Remote, ", ") + "\n"
		if orig != nil && orig.Mail != nil && orig.Mail.From != "" {
			ev.Body += "Sender: " + orig.Mail.From + "\n"
		}
	}
	if orig != nil {
		ev.Body += "Original title: " + orig.Title + "\n"
		if t := orig.Type(); t != "" {
			ev.Fields["original-type"] = t
		}
	}
	return ev
}
