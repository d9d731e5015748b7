package app

import (
	"herald/internal/mmapfile"
	"herald/internal/spool"
)

// readEntry returns the raw message of e. A mail of spool.MapMin bytes or
// more is mapped instead of read (mapped is then set, and raw is
// mapped.Bytes): a 50 MB mail is never copied into the heap, where the
// garbage collector would let the heap grow to twice its size before it
// runs (docs/limits.md, "Memory"). The caller closes mapped with unmap
// once nothing uses raw, and runs with debug.SetPanicOnFault while it
// reads raw: a maildrop file truncated under the mapping then panics (the
// entry is retried and, shorter than its envelope says, quarantined)
// instead of crashing the daemon.
func (a *App) readEntry(e spool.Entry) (raw []byte, mapped *mmapfile.Mapping, err error) {
	if e.Env.Kind == spool.KindEvent || e.Size < spool.MapMin {
		raw, err = a.spool.ReadAll(e)
		return raw, nil, err
	}
	m, err := a.spool.Map(e)
	if err != nil {
		// Reading still works where mapping does not (no address space
		// left, a file system without mmap): slower, never lost.
		a.log.Warn("spool: cannot map a large entry; reading it", "spool_id", e.ID, "size", e.Size, "err", err)
		raw, err = a.spool.ReadAll(e)
		return raw, nil, err
	}
	return m.Bytes, m, nil
}

// unmap releases the mapping readEntry made.
func (a *App) unmap(e spool.Entry, m *mmapfile.Mapping) {
	if err := m.Close(); err != nil {
		a.log.Warn("spool: unmap entry", "spool_id", e.ID, "err", err)
	}
}
