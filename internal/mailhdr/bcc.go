// Package mailhdr holds streaming edits of a mail's header block that the
// ingest paths share: removing Bcc fields, which are blind copies and must
// leave no trace in a notification or a relayed copy, whatever path a mail
// took (the sendmail shim, its header overflow, SMTP, sendmail -bs).
package mailhdr

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// BccFilter passes a message on, removing Bcc fields and their
// continuation lines until the header block ends (an empty line, or a line
// that is neither a field nor a continuation). It streams: a field of any
// length costs no memory beyond its read buffer. Read errors of the source
// are returned unchanged.
type BccFilter struct {
	br       *bufio.Reader
	inHeader bool
	bol      bool // the next chunk starts a line
	drop     bool // the current field is a Bcc field
	keep     bool // the current line is passed on
	buf      []byte
	err      error
}

// StripBcc returns a filter over a whole message read from r.
func StripBcc(r io.Reader) *BccFilter {
	return &BccFilter{br: bufio.NewReaderSize(r, 64<<10), inHeader: true, bol: true}
}

// Resume returns a filter over the rest of a header block, from the start
// of a line; inBcc says whether the field before it was a Bcc field (which
// a continuation line would continue).
func Resume(r io.Reader, inBcc bool) *BccFilter {
	f := StripBcc(r)
	f.drop = inBcc
	return f
}

// Read implements io.Reader over the filtered message.
func (f *BccFilter) Read(p []byte) (int, error) {
	for len(f.buf) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if !f.inHeader {
			return f.br.Read(p) // past the header: straight through
		}
		c, err := f.br.ReadSlice('\n')
		complete := err == nil
		if err == bufio.ErrBufferFull {
			err = nil
		}
		f.buf = f.feed(c, complete)
		if err != nil {
			f.err = err
		}
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// feed classifies one chunk of input (complete: it ends its line) and
// returns what of it to pass on.
func (f *BccFilter) feed(c []byte, complete bool) []byte {
	if !f.inHeader || len(c) == 0 {
		return c
	}
	if f.bol {
		switch {
		case string(c) == "\n" || string(c) == "\r\n":
			f.inHeader, f.keep = false, true
		case c[0] == ' ' || c[0] == '\t':
			f.keep = !f.drop
		default:
			if name, ok := FieldName(c); ok {
				f.drop = strings.EqualFold(name, "bcc")
				f.keep = !f.drop
			} else {
				f.inHeader, f.keep = false, true
			}
		}
	}
	f.bol = complete
	if f.keep {
		return c
	}
	return nil
}

// FieldName returns the name of the header field that line starts, if it
// starts one: printable ASCII except ":", then optional blanks (obsolete
// syntax), then ":".
func FieldName(line []byte) (string, bool) {
	for i, c := range line {
		switch {
		case c == ':':
			return string(line[:i]), i > 0
		case c == ' ' || c == '\t':
			j := i
			for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
				j++
			}
			return string(line[:i]), i > 0 && j < len(line) && line[j] == ':'
		case c < 33 || c > 126:
			return "", false
		}
	}
	return "", false
}

// StripFromLine removes a leading mbox envelope line ("From root@host  Fri
// May 23 11:59:32 2025"), which a .forward pipe hands over before the header
// and which is not a header field. It is only taken for one when a header
// field follows, so a header-less text starting with "From the backup job"
// keeps its first line.
func StripFromLine(b []byte) []byte {
	if !bytes.HasPrefix(b, []byte("From ")) {
		return b
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b
	}
	next := b[i+1:]
	if j := bytes.IndexByte(next, '\n'); j >= 0 {
		next = next[:j+1]
	}
	if _, ok := FieldName(next); !ok {
		return b
	}
	return b[i+1:]
}

// OneLine replaces line breaks and other control characters with spaces, so
// that a value cannot start a new header line, body line or reply line.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
