package spool

import (
	"slices"
	"sync"
)

// The ingest learns of new entries from Watch's signals and used to list
// both directories at every one, opening each new entry to read its
// envelope and again to read its message. Most entries are the daemon's
// own (SMTP, the shim's socket, the HTTP API), committed through the
// journal from a buffer it holds anyway: those are kept in memory here as
// they are committed, so that the ingest takes them without listing or
// reading a file (Spool.TakeFresh). Anything that puts an entry into a
// directory otherwise (a submitter's maildrop file, an entry too big for
// the journal, a file the daemon did not write) marks the list as missing
// something, and the next look lists the directories as before
// (docs/flow.md).

// maxFresh and maxFreshBytes bound what is kept; beyond them the ingest
// lists instead.
const (
	maxFresh      = 4096
	maxFreshBytes = 16 << 20
)

// freshList is guarded by its own mutex (Submit, Remove, the inotify
// reader and the ingest use it concurrently).
type freshList struct {
	mu      sync.Mutex
	entries []Entry
	bytes   int // of the entries' data
	// own holds the IDs this daemon committed into incoming/ and has not
	// removed: inotify's events for them are not news, and an entry no
	// longer in it is not handed out.
	own map[string]struct{}
	// incomplete: an entry may have appeared that entries does not hold.
	incomplete bool
}

// keepFresh records the entry id that submitJournaled just committed to
// dest: b is the whole file, env the envelope newEntry encoded at its head
// (off bytes), so the entry is what openEntry would make of the file
// without parsing it again.
func (s *Spool) keepFresh(id, dest string, env Envelope, off int64, b []byte) {
	env.UID = s.uid
	s.fresh.add(Entry{ID: id, Env: env, Size: int64(len(b)) - off, path: dest, off: off, data: b})
}

// expect notes that the daemon is about to commit the entry id into
// incoming/, before the file appears, so that inotify's event for it is
// known for the daemon's own.
func (f *freshList) expect(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.own == nil {
		f.own = make(map[string]struct{})
	}
	f.own[id] = struct{}{}
}

func (f *freshList) add(e Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.own == nil {
		f.own = make(map[string]struct{})
	}
	f.own[e.ID] = struct{}{}
	if len(f.entries) >= maxFresh || f.bytes+len(e.data) > maxFreshBytes {
		f.entries, f.bytes, f.incomplete = nil, 0, true
		return
	}
	if !f.incomplete {
		f.entries = append(f.entries, e)
		f.bytes += len(e.data)
	}
}

// missed notes that an entry may be there that the list does not hold.
func (f *freshList) missed() {
	f.mu.Lock()
	f.incomplete = true
	f.mu.Unlock()
}

// gone forgets an entry that was removed or set aside.
func (f *freshList) gone(id string) {
	f.mu.Lock()
	delete(f.own, id)
	f.mu.Unlock()
}

// ownName reports whether name in incoming/ is this daemon's doing: a
// journal's temporary file, or an entry it committed and holds.
func (f *freshList) ownName(name string) bool {
	if len(name) > 0 && name[0] == '.' {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.own[name]
	return ok
}

// TakeFresh returns the entries this daemon committed since the last
// TakeFresh, oldest first, without those skip reports (the
// caller has them) or that were removed meanwhile. complete is false when
// an entry may have appeared otherwise since then (a maildrop file, a big
// entry, a file in incoming/ the daemon did not write, more entries than
// it keeps): the caller lists with PendingExcept instead. Either way the
// list starts empty again, so a caller about to list everything takes it
// first. The ingest is its only caller.
func (s *Spool) TakeFresh(skip func(id string) bool) (entries []Entry, complete bool) {
	f := &s.fresh
	f.mu.Lock()
	taken, incomplete := f.entries, f.incomplete
	f.entries, f.bytes, f.incomplete = nil, 0, false
	for _, e := range taken {
		if _, ok := f.own[e.ID]; ok && (skip == nil || !skip(e.ID)) {
			entries = append(entries, e)
		}
	}
	f.mu.Unlock()
	if incomplete {
		return nil, false
	}
	sortEntries(entries)
	return slices.Clip(entries), true
}
