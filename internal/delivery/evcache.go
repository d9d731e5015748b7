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
// change the event it is handed. The raw mail is never kept: an attempt
// that needs it reads or maps it in its turn (readEventToDeliver). Bounded
// by entry count and bytes, oldest out first.
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
	ev       *event.Event // never handed out: copies are
	file     fileID
	size     int
	mailSize int // of the event's mail as its file says; -1: none
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

// cachedEvent is readEvent(id, false) through the cache.
func (q *Queue) cachedEvent(id string) (*event.Event, error) {
	ev, _, err := q.cachedEventSized(id)
	return ev, err
}

// cachedEventSized is cachedEvent that also returns the size of the
// event's mail as its event file says (-1: none), for loading the mail.
func (q *Queue) cachedEventSized(id string) (*event.Event, int, error) {
	file, ok := statID(q.eventPath(id))
	if !ok {
		ev, _, size, err := q.decodeEvent(id) // says what is wrong
		return ev, size, err
	}
	if ev, size := q.cache.get(id, file); ev != nil {
		return ev, size, nil
	}
	ev, _, size, err := q.decodeEvent(id)
	if err != nil {
		return nil, 0, err
	}
	q.cache.put(id, file, ev, size)
	return copyEvent(ev), size, nil
}

// get returns a copy of the cached event and its mail's size, or nil.
func (c *eventCache) get(id string, file fileID) (*event.Event, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e == nil || e.file != file {
		return nil, 0
	}
	return copyEvent(e.ev), e.mailSize
}

func (c *eventCache) put(id string, file fileID, ev *event.Event, mailSize int) {
	size := len(ev.Title) + len(ev.Body) + 256
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
	c.m[id] = &cached{ev: ev, file: file, size: size, mailSize: mailSize}
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
