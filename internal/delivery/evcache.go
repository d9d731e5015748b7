package delivery

import (
	"slices"
	"sync"

	"herald/internal/event"
	"herald/internal/safeio"
)

// An event queued for several targets is read by each of their attempts.
// eventCache keeps the events attempts read lately, decoded, so that the
// attempts of one event read and decode its file once instead of once per
// target (a quarter of the CPU an attempt costs on a fast disk). An entry
// is trusted only while the event file is the one it was read from (the
// journal's safeio.FileVersion: each write of a held file is a new
// version, and a file on disk is known by inode, size and modification
// time), and each attempt gets a copy of its own, since a target may
// change the event it is handed. A raw mail is never kept unless it came
// inside the event file (inline, up to inlineMax bytes, with the same
// read): an attempt that needs a mail of its own file reads or maps it in
// its turn (readEventToDeliver). Bounded by entry count and bytes, oldest
// out first.
const (
	cacheEntries = 2048
	cacheBytes   = 32 << 20
)

type eventCache struct {
	mu    sync.Mutex
	m     map[string]*cached
	order []string // insertion order, for eviction
	bytes int
}

type cached struct {
	ev   *event.Event // never handed out: copies are
	file safeio.FileVersion
	size int
	mail storedMail // where the event's mail is, as its file says
}

// cachedEvent is readEvent(id, false) through the cache.
func (q *Queue) cachedEvent(id string) (*event.Event, error) {
	ev, _, err := q.cachedEventSized(id)
	return ev, err
}

// cachedEventSized is cachedEvent that also says where the event's mail
// is (its size, and the mail itself when its event file holds it), for
// loading the mail.
func (q *Queue) cachedEventSized(id string) (*event.Event, storedMail, error) {
	file, ok := q.version(q.eventPath(id))
	if !ok {
		ev, _, sm, err := q.decodeEvent(id) // says what is wrong
		return ev, sm, err
	}
	if ev, sm := q.cache.get(id, file); ev != nil {
		return ev, sm, nil
	}
	ev, _, sm, err := q.decodeEvent(id)
	if err != nil {
		return nil, sm, err
	}
	q.cache.put(id, file, ev, sm)
	return copyEvent(ev), sm, nil
}

// get returns a copy of the cached event and where its mail is, or nil.
func (c *eventCache) get(id string, file safeio.FileVersion) (*event.Event, storedMail) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e == nil || e.file != file {
		return nil, storedMail{}
	}
	return copyEvent(e.ev), e.mail
}

// put caches ev, which has no raw mail (an inline mail's bytes come in
// mail, and count against the bound).
func (c *eventCache) put(id string, file safeio.FileVersion, ev *event.Event, mail storedMail) {
	size := len(ev.Title) + len(ev.Body) + len(mail.inline) + 256
	for k, v := range ev.Fields {
		size += len(k) + len(v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*cached{}
	}
	if old := c.m[id]; old != nil {
		c.bytes -= old.size
	} else {
		c.order = append(c.order, id)
	}
	c.m[id] = &cached{ev: ev, file: file, size: size, mail: mail}
	c.bytes += size
	for len(c.order) > 0 && (len(c.m) > cacheEntries || c.bytes > cacheBytes) {
		old := c.order[0]
		c.order = slices.Delete(c.order, 0, 1)
		if e := c.m[old]; e != nil {
			c.bytes -= e.size
			delete(c.m, old)
		}
	}
}

// copyEvent returns a copy of ev (read without its raw mail) that shares
// nothing a target could change.
func copyEvent(ev *event.Event) *event.Event {
	out := *ev
	if ev.Fields != nil {
		out.Fields = make(map[string]string, len(ev.Fields))
		for k, v := range ev.Fields {
			out.Fields[k] = v
		}
	}
	if ev.Mail != nil {
		m := *ev.Mail
		m.Recipients = slices.Clone(m.Recipients)
		out.Mail = &m
	}
	return &out
}
