package safeio

// This file holds the journal's on-disk format (segments of records:
// length, CRC32C, payload) and its replay at Open. journal.go describes
// the design.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// holds reports whether the file at path has exactly data and mode perm.
func holds(path string, data []byte, perm os.FileMode) bool {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != perm || st.Size() != int64(len(data)) {
		return false
	}
	b, err := os.ReadFile(path)
	return err == nil && bytes.Equal(b, data)
}

// replay applies, for every path the segments name, its last op, in
// journal order, after cutting torn tails off. It returns the number of
// ops applied.
func (j *Journal) replay(segs []string) (int, error) {
	var all []record
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			return 0, err
		}
		recs, good, derr := decodeSegment(b)
		if derr != nil {
			j.log.Warn("journal: torn or damaged tail cut off (never acknowledged)", "segment", s, "at", good, "dropped_bytes", len(b)-good, "err", derr)
			if err := os.Truncate(s, int64(good)); err != nil {
				return 0, err
			}
		}
		cancelled := map[int64]bool{}
		for _, r := range recs {
			for _, c := range r.cancel {
				cancelled[c] = true
			}
		}
		for _, r := range recs {
			if r.kind != opCancel && !cancelled[r.off] {
				all = append(all, r)
			}
		}
	}
	last := make(map[string]int, len(all))
	for i, r := range all {
		last[r.rel] = i
	}
	n := 0
	for i, r := range all {
		if last[r.rel] != i {
			continue
		}
		p := filepath.Join(j.root, r.rel)
		src := ""
		if r.kind == opInstall {
			src = filepath.Join(j.root, r.src)
		}
		err := j.inject(StepApply, p)
		if err == nil {
			err = applyOp(r.kind, p, src, r.data, r.perm, true)
		}
		if err != nil {
			if r.kind == opInstall && errors.Is(err, fs.ErrNotExist) {
				// Its temporary file and its destination are both gone:
				// a later removal that this segment does not hold cannot
				// exist (it would be the path's last op), so this is
				// damage, reported and skipped rather than fatal.
				j.log.Error("journal: install without its file", "path", p, "src", src)
				continue
			}
			return n, fmt.Errorf("replay %s: %w", p, err)
		}
		n++
	}
	j.replayed.Add(uint64(n))
	return n, nil
}

// segments lists the segment files in journal order.
func (j *Journal) segments() ([]string, error) {
	names, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, err
	}
	var segs []string
	for _, de := range names {
		if _, ok := segSeq(de.Name()); ok {
			segs = append(segs, filepath.Join(j.dir, de.Name()))
		} else {
			j.log.Warn("journal: unexpected file in the journal directory; ignored", "file", filepath.Join(j.dir, de.Name()))
		}
	}
	slices.Sort(segs)
	return segs, nil
}

// segSeq parses a segment's name (or path).
func segSeq(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(filepath.Base(name), segExt)
	if !ok || len(base) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 16, 64)
	return n, err == nil
}

// castagnoli is built on first use, not at start-up: the shim links this
// package and never checksums anything.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// appendRecord appends op's record: payload length and CRC32C (little
// endian), then the payload.
func appendRecord(buf []byte, o *Op, rel string) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = append(buf, o.kind)
	buf = binary.AppendUvarint(buf, uint64(len(rel)))
	buf = append(buf, rel...)
	switch o.kind {
	case opWrite, opInPlace:
		buf = binary.AppendUvarint(buf, uint64(o.perm))
		buf = binary.AppendUvarint(buf, uint64(len(o.data)))
		buf = append(buf, o.data...)
	case opInstall:
		// src is beside path, in the same directory.
		buf = binary.AppendUvarint(buf, uint64(len(filepath.Base(o.src))))
		buf = append(buf, filepath.Base(o.src)...)
	}
	payload := buf[start+8:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli()))
	return buf
}

// record is one decoded record; src is relative to the root.
type record struct {
	kind     byte
	rel, src string
	data     []byte
	perm     os.FileMode
	off      int64   // where it starts in its segment
	cancel   []int64 // opCancel: the offsets it cancels
}

// appendCancel appends a record cancelling the records at offs.
func appendCancel(buf []byte, offs []int64) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, opCancel)
	buf = binary.AppendUvarint(buf, uint64(len(offs)))
	for _, o := range offs {
		buf = binary.AppendUvarint(buf, uint64(o))
	}
	payload := buf[start+8:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli()))
	return buf
}

// decodeSegment reads a segment's records. good is the length of the
// valid prefix; err says why the rest (if any) was not read.
func decodeSegment(b []byte) (recs []record, good int, err error) {
	if len(b) < len(segMagic) || string(b[:len(segMagic)]) != segMagic {
		if len(b) == 0 {
			return nil, 0, nil
		}
		return nil, 0, errors.New("no segment header")
	}
	off := len(segMagic)
	for off < len(b) {
		if len(b)-off < 8 {
			return recs, off, errors.New("torn record header")
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		if n == 0 || n > maxRecord {
			return recs, off, fmt.Errorf("bad record length %d", n)
		}
		if len(b)-off-8 < n {
			return recs, off, errors.New("torn record")
		}
		payload := b[off+8 : off+8+n]
		if crc32.Checksum(payload, castagnoli()) != sum {
			return recs, off, errors.New("record checksum mismatch")
		}
		r, err := decodePayload(payload)
		if err != nil {
			return recs, off, err
		}
		r.off = int64(off)
		if r.kind == opCancel {
			for _, c := range r.cancel {
				i, found := slices.BinarySearchFunc(recs, c, func(x record, c int64) int { return cmp.Compare(x.off, c) })
				if !found || recs[i].kind == opCancel {
					return recs, off, fmt.Errorf("cancel record names no earlier record at %d", c)
				}
			}
		}
		recs = append(recs, r)
		off += 8 + n
	}
	return recs, off, nil
}

func decodePayload(p []byte) (record, error) {
	var r record
	bad := func(what string) (record, error) { return record{}, fmt.Errorf("bad record: %s", what) }
	str := func() (string, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return "", false
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return s, true
	}
	r.kind, p = p[0], p[1:]
	if r.kind == opCancel {
		n, k := binary.Uvarint(p)
		if k <= 0 || n == 0 || n > uint64(len(p)) {
			return bad("cancel count")
		}
		p = p[k:]
		for range n {
			o, k := binary.Uvarint(p)
			if k <= 0 || o > maxSegmentOffset {
				return bad("cancel offset")
			}
			r.cancel = append(r.cancel, int64(o))
			p = p[k:]
		}
		if len(p) != 0 {
			return bad("trailing bytes")
		}
		return r, nil
	}
	var ok bool
	if r.rel, ok = str(); !ok || !validRel(r.rel) {
		return bad("path")
	}
	switch r.kind {
	case opWrite, opInPlace:
		perm, k := binary.Uvarint(p)
		if k <= 0 || perm > 0o777 {
			return bad("mode")
		}
		p = p[k:]
		r.perm = os.FileMode(perm)
		n, k := binary.Uvarint(p)
		if k <= 0 || n != uint64(len(p)-k) {
			return bad("data length")
		}
		r.data = p[k:]
		p = nil
	case opRemove:
	case opInstall:
		src, ok := str()
		if !ok || src == "" || strings.ContainsRune(src, '/') || src == "." || src == ".." {
			return bad("install source")
		}
		r.src = filepath.Join(filepath.Dir(r.rel), src)
	default:
		return bad(fmt.Sprintf("kind %q", r.kind))
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return r, nil
}

// validRel accepts a clean relative path that stays inside the root and
// outside the journal directory.
func validRel(rel string) bool {
	return rel != "" && !filepath.IsAbs(rel) && filepath.Clean(rel) == rel && rel != "." &&
		rel != ".." && !strings.HasPrefix(rel, "../") && rel != JournalDirName &&
		!strings.HasPrefix(rel, JournalDirName+"/") && !strings.ContainsRune(rel, 0)
}
