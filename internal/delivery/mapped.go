package delivery

import (
	"herald/internal/event"
	"herald/internal/mmapfile"
)

// readEventToDeliver is readEvent for a delivery attempt. A mail of
// mmapfile.Min bytes or more is mapped rather than read into the heap
// (docs/limits.md, "Memory"): ev.Mail.Raw is the mapping, and ev.Mail.Open
// streams the mail from its file for targets that can write it as it
// comes (mbox). The caller ends the mapping with unmapMail once the
// attempt is over.
func (q *Queue) readEventToDeliver(id string, withMail bool) (*event.Event, *mmapfile.Mapping, error) {
	ev, _, m, err := q.loadEvent(id, withMail, true)
	return ev, m, err
}

// unmapMail ends a mapping readEventToDeliver made. The event's mail stops
// referring to it first, so anything still holding the event sees no mail
// rather than unmapped memory.
func (q *Queue) unmapMail(ev *event.Event, m *mmapfile.Mapping) {
	if m == nil {
		return
	}
	if ev != nil && ev.Mail != nil {
		ev.Mail.Raw, ev.Mail.Open = nil, nil
	}
	if err := m.Close(); err != nil {
		q.log.Warn("unmap a delivered mail", "event_id", ev.ID, "err", err)
	}
}
