package shim

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"

	"herald/internal/mailhdr"
)

// maxHeaderBytes bounds the header block held in memory. A message whose
// header block is longer is not rejected: the fields up to the bound stay
// the header, and the rest of the block becomes body text.
const maxHeaderBytes = 1 << 20

// msgReader reads a message from the shim's stdin. Unless dots is off (-i),
// a line holding only "." ends the input, as with Postfix's sendmail: the dot
// line is dropped and nothing else is changed (no dot-unstuffing, since
// callers like Proxmox never dot-stuff). Bare LF and CRLF, a missing final
// newline, 8-bit bytes and NULs all pass through unchanged.
type msgReader struct {
	br   *bufio.Reader
	dots bool  // a lone "." line ends the input
	bol  bool  // at the beginning of a line
	eof  bool  // input ended (EOF or the dot line)
	err  error // sticky error of the underlying reader
	buf  []byte
}

func newMsgReader(r io.Reader, dots bool) *msgReader {
	return &msgReader{br: bufio.NewReaderSize(r, 64<<10), dots: dots, bol: true}
}

// isDotLine reports whether line, read at the beginning of a line, is the
// end-of-input marker.
func isDotLine(line []byte) bool {
	return string(line) == ".\n" || string(line) == ".\r\n" || string(line) == "."
}

// chunk returns the next piece of input: a whole line with its ending, the
// last line without one, or a piece of a line longer than the buffer
// (complete false). The slice is valid until the next call.
func (m *msgReader) chunk() (data []byte, complete bool, err error) {
	if m.err != nil {
		return nil, false, m.err
	}
	if m.eof {
		return nil, false, io.EOF
	}
	line, err := m.br.ReadSlice('\n')
	switch {
	case err == nil:
		if m.bol && m.dots && isDotLine(line) {
			m.eof = true
			return nil, false, io.EOF
		}
		m.bol = true
		return line, true, nil
	case errors.Is(err, bufio.ErrBufferFull):
		m.bol = false
		return line, false, nil
	case errors.Is(err, io.EOF):
		m.eof = true
		if len(line) == 0 || (m.bol && m.dots && isDotLine(line)) {
			return nil, false, io.EOF
		}
		return line, true, nil
	default:
		m.err = err
		return nil, false, err
	}
}

// Read implements io.Reader over the rest of the message.
func (m *msgReader) Read(p []byte) (int, error) {
	for len(m.buf) == 0 {
		c, _, err := m.chunk()
		if err != nil {
			return 0, err
		}
		m.buf = c
	}
	n := copy(p, m.buf)
	m.buf = m.buf[n:]
	return n, nil
}

// line returns the next whole line as a fresh slice. If the line exceeds
// max bytes, it returns what it read with tooLong set.
func (m *msgReader) line(max int) (line []byte, tooLong bool, err error) {
	for {
		c, complete, err := m.chunk()
		if errors.Is(err, io.EOF) && len(line) > 0 {
			// The input ended right after a piece of a long line.
			return line, len(line) > max, nil
		}
		if err != nil {
			return line, false, err
		}
		line = append(line, c...)
		if complete {
			return line, len(line) > max, nil
		}
		if len(line) > max {
			return line, true, nil
		}
	}
}

// field is one header field as written: its name and its raw lines
// (continuation lines and line endings included).
type field struct {
	name string
	raw  []byte
}

// headerBlock is the parsed start of a message.
type headerBlock struct {
	fields []field
	sep    []byte    // the empty line that ended the header block, as written
	body   []byte    // bytes already read that belong to the body
	rest   io.Reader // the rest of a header block too long to hold (overflow)
	nl     string    // line ending for added lines: the message's own
	eof    bool      // the input ended inside the header block
}

// readHeaderBlock reads the header block. It never fails on format: input
// that does not start with a header field is all body; a header block that
// runs into a non-header line ends there (the line starts the body); one
// longer than maxHeaderBytes ends at the bound (overflow). Only a read error
// of the input is returned.
func readHeaderBlock(m *msgReader) (*headerBlock, error) {
	h := &headerBlock{nl: "\n"}
	total := 0
	first := true
	for {
		line, tooLong, err := m.line(maxHeaderBytes - total)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			h.eof = true
			return h, nil
		}
		if err != nil {
			return nil, err
		}
		if first {
			first = false
			if bytes.HasSuffix(line, []byte("\r\n")) {
				h.nl = "\r\n"
			}
		}
		total += len(line)
		if tooLong || total > maxHeaderBytes {
			h.overflow(m, line)
			return h, nil
		}
		if string(line) == "\n" || string(line) == "\r\n" {
			h.sep = line
			return h, nil
		}
		if (line[0] == ' ' || line[0] == '\t') && len(h.fields) > 0 {
			last := &h.fields[len(h.fields)-1]
			last.raw = append(last.raw, line...)
			continue
		}
		if name, ok := fieldName(line); ok {
			h.fields = append(h.fields, field{name: name, raw: line})
			continue
		}
		h.body = line
		return h, nil
	}
}

// overflow ends a header block that outgrew maxHeaderBytes: the fields
// read so far stay the header (so -t still finds To, Cc and Bcc there, and
// Subject and From stay what they are), and the rest of the block — line,
// then what follows — becomes body text after the empty line fix writes,
// as written except for its Bcc fields: those are blind copies in every
// path, however long the block, so the rest streams through mailhdr's Bcc
// filter (the fields kept lose theirs in fix).
func (h *headerBlock) overflow(m *msgReader, line []byte) {
	inBcc := false
	if n := len(h.fields); n > 0 {
		inBcc = strings.EqualFold(h.fields[n-1].name, "bcc") // line may continue it
	}
	h.body = nil
	h.rest = mailhdr.Resume(io.MultiReader(bytes.NewReader(line), m), inBcc)
}

// tail returns the reader of the message after what readHeaderBlock
// consumed.
func (h *headerBlock) tail(m *msgReader) io.Reader {
	if h.rest != nil {
		return h.rest
	}
	return m
}

// fieldName returns the name of the header field that line starts, if it
// starts one (mailhdr.FieldName).
func fieldName(line []byte) (string, bool) { return mailhdr.FieldName(line) }

// value returns the field's unfolded value (after the colon).
func (f field) value() string {
	v := f.raw[bytes.IndexByte(f.raw, ':')+1:]
	return strings.NewReplacer("\r", "", "\n", "").Replace(string(v))
}

// fixes says what fix adds to the header block.
type fixes struct {
	extract bool   // -t: collect recipients from To, Cc, Bcc
	from    string // From value to add when there is none
	date    string // Date value to add when there is none
	msgID   string // Message-ID value to add when there is none
}

// fix returns the header block as it is to be stored, with the body bytes
// already read, and the recipients found (with -t). Bcc fields are always
// removed: they are blind copies, and neither a notification nor a relayed
// copy may reveal them. Missing From, Date and Message-ID are added at the
// end of the block; repeated ones (invalid by RFC 5322) are reduced to the
// first, so the rest of herald sees exactly one of each.
func (h *headerBlock) fix(o fixes) (out []byte, rcpts []string) {
	var b bytes.Buffer
	var haveFrom, haveDate, haveID bool
	for _, f := range h.fields {
		keep := true
		switch strings.ToLower(f.name) {
		case "to", "cc":
			if o.extract {
				rcpts = append(rcpts, parseAddressList(f.value())...)
			}
		case "bcc":
			if o.extract {
				rcpts = append(rcpts, parseAddressList(f.value())...)
			}
			keep = false
		case "from":
			keep, haveFrom = !haveFrom, true
		case "date":
			keep, haveDate = !haveDate, true
		case "message-id":
			keep, haveID = !haveID, true
		}
		if !keep {
			continue
		}
		b.Write(f.raw)
		if !bytes.HasSuffix(f.raw, []byte("\n")) {
			b.WriteString(h.nl) // the input ended inside this field
		}
	}
	add := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString(h.nl)
	}
	if !haveFrom {
		add("From", o.from)
	}
	if !haveDate {
		add("Date", o.date)
	}
	if !haveID {
		add("Message-ID", o.msgID)
	}
	switch {
	case h.sep != nil:
		b.Write(h.sep)
	case len(h.body) > 0 || !h.eof:
		b.WriteString(h.nl)
	}
	b.Write(h.body)
	return b.Bytes(), rcpts
}

// parseAddressList returns the addresses in a To/Cc/Bcc value: RFC 5322
// address lists (groups, display names, comments) through net/mail, and
// anything net/mail rejects (bare local names like "root" are the common
// case) through a lenient fallback.
func parseAddressList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out
	}
	var out []string
	for _, part := range splitTopLevel(v) {
		part = strings.TrimSpace(stripComments(part))
		// "group: a, b;" - drop the group's display name and terminator.
		if i := strings.IndexByte(part, ':'); i >= 0 && !strings.ContainsAny(part[:i], "<@\"") {
			part = part[i+1:]
		}
		part = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(part), ";"))
		if a := cleanAddress(part); a != "" {
			if !strings.ContainsAny(part, "<>") {
				// Without angle brackets, the address is the word with
				// an "@", or else the last word.
				words := strings.Fields(a)
				a = words[len(words)-1]
				for _, w := range words {
					if strings.Contains(w, "@") {
						a = w
						break
					}
				}
				a = strings.Trim(a, `"`)
			}
			if a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// splitTopLevel splits an address list at commas and semicolons that are
// not inside quotes, angle brackets or comments.
func splitTopLevel(v string) []string {
	var out []string
	depth, angle, quoted, start := 0, false, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && (quoted || depth > 0):
			i++
		case c == '"' && depth == 0:
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case (c == ',' || c == ';') && !angle:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// stripComments removes (comments) outside quotes.
func stripComments(s string) string {
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (quoted || depth > 0):
			if depth == 0 {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
			}
			i++
			continue
		case c == '"' && depth == 0:
			quoted = !quoted
		case !quoted && c == '(':
			depth++
			continue
		case !quoted && c == ')' && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// formatFrom builds a From value from a display name and an address.
func formatFrom(name, addr string) string {
	name = strings.TrimSpace(cleanText(name))
	if name == "" {
		return addr
	}
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		return mime.QEncoding.Encode("utf-8", name) + " <" + addr + ">"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `" <` + addr + ">"
}
