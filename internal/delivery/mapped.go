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
//
// The event comes from the event cache (evcache.go), as the attempt's own
// copy: an attempt that needs the mail does not read and decode the event
// file a second time, only the mail.
func (q *Queue) readEventToDeliver(id string, withMail bool) (*event.Event, *mmapfile.Mapping, error) {
	ev, sm, err := q.cachedEventSized(id)
	if err != nil || !withMail || ev.Mail == nil {
		return ev, nil, err
	}
	m, err := q.attachMail(ev, sm, true)
	if err != nil {
		return nil, nil, err
	}
	return ev, m, nil
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
