package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// MapMin is the message size from which the daemon maps an entry
// (Spool.Map) instead of reading it into memory (Spool.ReadAll): below it a
// read costs less than a mapping (docs/limits.md, "Memory").
const MapMin = 256 << 10

// Mapped is the raw message of a spool entry mapped read-only into memory.
// Its pages are read from the file only where they are looked at, and they
// are the kernel's page cache, not the daemon's heap: converting a 50 MB
// mail reads its header and the ends of its text, and the copy into the
// delivery queue goes file to file (Open). Raw is valid until Close; nothing
// may keep it, or any slice of it, past that.
type Mapped struct {
	// Raw is the message: the bytes after the envelope.
	Raw []byte

	path   string
	off    int64
	region []byte // the whole mapping, envelope included
}

// Map maps the raw message of e. Reading Raw faults when the file was
// truncated after Map (a maildrop file belongs to its submitter): a caller
// reading it must run with debug.SetPanicOnFault(true) to get a panic it can
// recover from instead of a crash.
func (s *Spool) Map(e Entry) (*Mapped, error) {
	f, err := os.OpenFile(e.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := e.off + e.Size
	if st.Size() != n {
		return nil, fmt.Errorf("spool: entry %s is %d bytes, was %d when listed", e.ID, st.Size(), n)
	}
	if n <= 0 || n != int64(int(n)) {
		return nil, fmt.Errorf("spool: entry %s: cannot map %d bytes", e.ID, n)
	}
	region, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("spool: map entry %s: %w", e.ID, err)
	}
	// The conversion reads the header and then jumps to the ends of the
	// text: no read-ahead of the middle.
	_ = unix.Madvise(region, unix.MADV_RANDOM)
	return &Mapped{Raw: region[e.off:], path: e.path, off: e.off, region: region}, nil
}

// Open returns a reader of exactly Raw's bytes from the file, for a copy
// that goes file to file (copy_file_range) without touching the mapping.
func (m *Mapped) Open() (io.ReadCloser, error) {
	if m.region == nil {
		return nil, errors.New("spool: mapping already closed")
	}
	f, err := os.OpenFile(m.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(m.off, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// Close unmaps the message; Raw is then invalid. Closing twice is harmless.
func (m *Mapped) Close() error {
	if m.region == nil {
		return nil
	}
	region := m.region
	m.region, m.Raw = nil, nil
	return unix.Munmap(region)
}
