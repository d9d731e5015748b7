package spool

import (
	"herald/internal/mmapfile"
)

// MapMin is the message size from which the daemon maps an entry
// (Spool.Map) instead of reading it into memory (Spool.ReadAll): below it a
// read costs less than a mapping (docs/limits.md, "Memory").
const MapMin = mmapfile.Min

// Map maps the raw message of e read-only (the bytes after the envelope):
// its pages are read from the file only where they are looked at, and the
// mapping's Open copies it file to file. An entry whose size changed since
// it was listed is refused. A maildrop file belongs to its submitter, who
// could truncate it while it is mapped: read the mapping with
// debug.SetPanicOnFault(true).
func (s *Spool) Map(e Entry) (*mmapfile.Mapping, error) {
	return mmapfile.Map(e.path, e.off, e.Size)
}
