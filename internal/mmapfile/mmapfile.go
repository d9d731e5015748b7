// Package mmapfile maps a stretch of a file read-only into memory, for the
// large mails the daemon must look at without copying them into its heap
// (docs/limits.md, "Memory"): the spool's entries and the delivery queue's
// .eml files. Pages are read only where they are looked at, and they are the
// kernel's page cache, which it can drop at any time, not heap that the
// garbage collector lets grow to twice what is live.
package mmapfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Min is the size from which mapping a file beats reading it.
const Min = 256 << 10

// Mapping is bytes [off, off+size) of a file, mapped read-only.
type Mapping struct {
	// Bytes are the mapped bytes, valid until Close; nothing may keep them,
	// or any slice of them, past that. Reading them faults when the file
	// was truncated after Map: a reader that cannot rule that out runs with
	// debug.SetPanicOnFault(true) and gets a panic it can recover from.
	Bytes []byte

	path   string
	off    int64
	region []byte // the whole mapping, from offset 0
}

// Map maps bytes [off, off+size) of the file at path, which must be
// exactly off+size bytes long (a file that changed since its size was
// taken is refused). Symbolic links are not followed.
func Map(path string, off, size int64) (*Mapping, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := off + size
	if off < 0 || size <= 0 || st.Size() != n {
		return nil, fmt.Errorf("map %s: file is %d bytes, want %d", path, st.Size(), n)
	}
	if n != int64(int(n)) {
		return nil, fmt.Errorf("map %s: %d bytes is too large", path, n)
	}
	region, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	// Readers look at the ends of a mail (its header, the ends of its
	// text) and copy the rest with Open: no read-ahead of the middle.
	_ = unix.Madvise(region, unix.MADV_RANDOM)
	return &Mapping{Bytes: region[off:], path: path, off: off, region: region}, nil
}

// Open returns a reader of exactly the mapped bytes, read from the file
// rather than the mapping: copying it to another file goes file to file
// (copy_file_range) and streaming it needs only a small buffer.
func (m *Mapping) Open() (io.ReadCloser, error) {
	if m.region == nil {
		return nil, errors.New("mmapfile: mapping already closed")
	}
	f, err := os.OpenFile(m.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(m.off, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &limitedFile{f: f, r: io.LimitReader(f, int64(len(m.Bytes)))}, nil
}

// limitedFile reads at most the mapped length of the file. The *os.File
// inside an io.LimitedReader still copies with copy_file_range.
type limitedFile struct {
	f *os.File
	r io.Reader
}

func (l *limitedFile) Read(p []byte) (int, error) { return l.r.Read(p) }
func (l *limitedFile) Close() error               { return l.f.Close() }

// WriteTo lets io.Copy hand the limited *os.File to the destination's
// ReadFrom, which copies file to file.
func (l *limitedFile) WriteTo(w io.Writer) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(l.r)
	}
	return io.Copy(w, struct{ io.Reader }{l.r})
}

// Close unmaps; Bytes is then nil. Closing twice is harmless.
func (m *Mapping) Close() error {
	if m.region == nil {
		return nil
	}
	region := m.region
	m.region, m.Bytes = nil, nil
	return unix.Munmap(region)
}
