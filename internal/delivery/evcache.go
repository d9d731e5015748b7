package delivery

import (
	"os"
	"slices"
	"sync"
	"syscall"

	"herald/internal/event"
)

// An event queued for several targets is read by each of their attempts.
// eventCache keeps the events attempts read lately, decoded, so that the
// attempts of one event read and decode its file once instead of once per
// target (a quarter of the CPU an attempt costs on a fast disk). An entry
// is trusted only while the event file is the one it was read from (same
// inode, size and modification time: a rewrite is a rename, so a new
// inode), and each attempt gets a copy of its own, since a target may
// change the event it is handed. Mails over cacheMailMax are not kept with
// their raw bytes. Bounded by entry count and bytes, oldest out first.
const (
	cacheEntries = 256
	cacheBytes   = 32 << 20
	cacheMailMax = 1 << 20
)

type eventCache struct {
	mu    sync.Mutex
	m     map[cacheKey]*cached
	order []cacheKey // insertion order, for eviction
	bytes int
}

type cacheKey struct {
	id       string
	withMail bool
}

type cached struct {
	ev   *event.Event // never handed out: copies are
	file fileID
	size int
}

// fileID identifies one version of a file.
type fileID struct {
	ino, size, mtime int64
}

func statID(path string) (fileID, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{ino: int64(st.Ino), size: fi.Size(), mtime: fi.ModTime().UnixNano()}, true
}

// cachedEvent is readEvent through the cache.
func (q *Queue) cachedEvent(id string, withMail bool) (*event.Event, error) {
	file, ok := statID(q.eventPath(id))
	if !ok {
		return q.readEvent(id, withMail) // says what is wrong
	}
	if ev := q.cache.get(id, withMail, file); ev != nil {
		return ev, nil
	}
	ev, err := q.readEvent(id, withMail)
	if err != nil {
		return nil, err
	}
	q.cache.put(id, withMail, file, ev)
	return copyEvent(ev, withMail), nil
}

// get returns a copy of the cached event, or nil. An entry with the mail
// also serves an attempt that does not read it.
func (c *eventCache) get(id string, withMail bool, file fileID) *event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[cacheKey{id, withMail}]
	if e == nil && !withMail {
		e = c.m[cacheKey{id, true}]
	}
	if e == nil || e.file != file {
		return nil
	}
	return copyEvent(e.ev, withMail)
}

func (c *eventCache) put(id string, withMail bool, file fileID, ev *event.Event) {
	size := len(ev.Title) + len(ev.Body) + 256
	for k, v := range ev.Fields {
		size += len(k) + len(v)
	}
	if ev.Mail != nil {
		if len(ev.Mail.Raw) > cacheMailMax {
			return
		}
		size += len(ev.Mail.Raw)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[cacheKey]*cached{}
	}
	k := cacheKey{id, withMail}
	if old := c.m[k]; old != nil {
		c.bytes -= old.size
	} else {
		c.order = append(c.order, k)
	}
	c.m[k] = &cached{ev: ev, file: file, size: size}
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

// copyEvent returns a copy of ev that shares nothing a target could
// change but the raw mail's bytes, which nothing writes to; without
// withMail the copy carries the envelope only.
func copyEvent(ev *event.Event, withMail bool) *event.Event {
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
		if !withMail {
			m.Raw = nil
		}
		out.Mail = &m
	}
	return &out
}
