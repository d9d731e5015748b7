package mbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"herald/internal/mailhdr"
)

// escapeBufSize is the buffer writeEscapedFrom streams through; a line
// longer than it is copied in pieces. A variable so that tests can make
// lines cross it.
var escapeBufSize = 64 << 10

// writeMailFrom writes the mail that open reads as writeEntry writes a
// mail in memory: without a leading From_ line (mailhdr.StripFromLine),
// escaped by writeEscapedFrom.
func writeMailFrom(w *bufio.Writer, open func() (io.ReadCloser, error)) error {
	rc, err := open()
	if err != nil {
		return fmt.Errorf("read the mail: %w", err)
	}
	defer func() { _ = rc.Close() }()
	br := bufio.NewReaderSize(rc, escapeBufSize)
	r, err := stripFromLine(br)
	if err != nil {
		return fmt.Errorf("read the mail: %w", err)
	}
	return writeEscapedFrom(w, r)
}

// stripFromLine is mailhdr.StripFromLine on a stream. StripFromLine looks
// at the first two lines only, so those are read whole and the rest
// follows unread.
func stripFromLine(br *bufio.Reader) (io.Reader, error) {
	if p, _ := br.Peek(5); string(p) != "From " {
		return br, nil
	}
	head, err := br.ReadBytes('\n')
	if err == nil {
		var second []byte
		second, err = br.ReadBytes('\n')
		head = append(head, second...)
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(mailhdr.StripFromLine(head)), br), nil
}

// writeEscapedFrom is writeEscaped reading the message from r: the same
// bytes out for the same bytes in (TestStreamedEscapingMatches), with
// only a buffer's worth of the message in memory.
func writeEscapedFrom(w *bufio.Writer, r io.Reader) error {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < escapeBufSize {
		br = bufio.NewReaderSize(r, escapeBufSize)
	}
	for {
		// At the start of a line: does it need the escape?
		esc, decided, err := lineEscape(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !decided {
			// A line of nothing but '>' longer than the buffer: read it
			// whole (only such a line costs its length in memory).
			line, err := br.ReadBytes('\n')
			if err != nil && err != io.EOF {
				return err
			}
			if err := writeEscaped(w, line); err != nil {
				return err
			}
			continue
		}
		if esc {
			if err := w.WriteByte('>'); err != nil {
				return err
			}
		}
		if done, err := copyLine(w, br); done || err != nil {
			return err
		}
	}
}

// lineEscape decides needsEscape for the line br starts with, looking
// at what is buffered and reading more only while undecided: peeking a
// whole buffer at every line start would move the buffer once per line.
// err is io.EOF at the end of the message.
func lineEscape(br *bufio.Reader) (esc, decided bool, err error) {
	n := max(br.Buffered(), 8)
	for {
		p, perr := br.Peek(min(n, br.Size()))
		if len(p) == 0 {
			if perr == nil {
				perr = io.ErrNoProgress
			}
			return false, false, perr
		}
		if perr != nil && perr != io.EOF {
			return false, false, perr
		}
		esc, decided = escapeOf(p, perr == io.EOF)
		if decided || len(p) == br.Size() {
			return esc, decided, nil
		}
		n = 2 * len(p)
	}
}

// escapeOf decides needsEscape for the line at the start of p, the
// buffered rest of the message (all of it when atEOF). decided is false
// when p is a run of '>' that does not end within it.
func escapeOf(p []byte, atEOF bool) (esc, decided bool) {
	rest := bytes.TrimLeft(p, ">")
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		return bytes.HasPrefix(rest[:i], []byte("From ")), true
	}
	if len(rest) >= len("From ") || atEOF {
		return bytes.HasPrefix(rest, []byte("From ")), true
	}
	return false, false
}

// copyLine copies one line from br to w in pieces, as writeEscaped writes
// it: a '\r' before the line end or the end of the message is dropped, and
// the line ends in '\n'. done reports the end of the message.
func copyLine(w *bufio.Writer, br *bufio.Reader) (done bool, err error) {
	heldCR := false // a '\r' that ended the previous piece
	for {
		piece, rerr := br.ReadSlice('\n')
		if rerr != nil && rerr != bufio.ErrBufferFull && rerr != io.EOF {
			return true, rerr
		}
		eol := len(piece) > 0 && piece[len(piece)-1] == '\n'
		data := piece
		if eol {
			data = piece[:len(piece)-1]
		}
		if heldCR {
			heldCR = false
			if len(data) > 0 || (!eol && rerr != io.EOF) {
				// Not the last byte of the line after all.
				if err := w.WriteByte('\r'); err != nil {
					return true, err
				}
			}
		}
		if len(data) > 0 && data[len(data)-1] == '\r' {
			data, heldCR = data[:len(data)-1], true
		}
		if _, err := w.Write(data); err != nil {
			return true, err
		}
		switch {
		case eol:
			return false, w.WriteByte('\n')
		case rerr == io.EOF:
			// The last line, without its newline: terminated here, and
			// a '\r' it ended with is dropped.
			return true, w.WriteByte('\n')
		}
	}
}
