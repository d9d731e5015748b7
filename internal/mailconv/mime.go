package mailconv

import (
	"bufio"
	"bytes"
	"fmt"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Why not message.Read and Entity.MultipartReader all the way: go-message
// reads multiparts as a stream through a 4 KiB bufio.Reader and gives up on
// a preamble or epilogue line longer than that, on text between parts, and
// on a header line without a colon; each of those would lose the body. We
// hold the whole message in memory anyway, so the MIME structure is split
// here by byte scanning (linear, tolerant of everything), while go-message's
// textproto reads each header block and its charset package converts text.

const (
	maxDepth = 32   // nesting of multiparts followed; deeper ones become text
	maxParts = 1000 // MIME parts looked at in one message
)

// loneCRToLF turns lone CRs (old Mac line ends) into LFs when the header
// uses them, so that the rest of the parser only has to know LF and CRLF.
// A lone CR further down (progress output) is left to cleanText. It copies
// only in that rare case.
func loneCRToLF(b []byte) []byte {
	first := bytes.IndexByte(b, '\n')
	if first < 0 {
		first = len(b)
	}
	cr := bytes.IndexByte(b[:first], '\r')
	if cr < 0 || (cr == first-1 && first < len(b)) { // no CR, or the CR of a CRLF
		return b
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			c = '\n'
		}
		out[i] = c
	}
	return out
}

// nextLine returns the line starting at pos without its line end (LF or
// CRLF) and the position after it.
func nextLine(b []byte, pos int) (line []byte, next int) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return bytes.TrimSuffix(b[pos:], []byte{'\r'}), len(b)
	}
	return bytes.TrimSuffix(b[pos:pos+i], []byte{'\r'}), pos + i + 1
}

// fieldName returns the name of a "Name: value" header line, or "" when the
// line is not one (no colon, empty name, or bytes a field name cannot hold).
func fieldName(line []byte) string {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return ""
	}
	name := bytes.TrimRight(line[:i], " \t") // "Subject : x" occurs in the wild
	if len(name) == 0 {
		return ""
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return ""
		}
	}
	return string(name)
}

// wellKnownField reports whether a field name is one real mail carries. It
// decides whether a block of "Name: value" lines that ends without a blank
// line was a header or just text that looks like one.
func wellKnownField(name string) bool {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "content-") || strings.HasPrefix(n, "x-") {
		return true
	}
	switch n {
	case "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "received",
		"return-path", "sender", "reply-to", "delivered-to", "auto-submitted", "precedence",
		"user-agent", "in-reply-to", "references", "list-id", "errors-to":
		return true
	}
	return false
}

// splitHeader separates the header block at the start of b from the body.
// The header ends at the first empty line. Broken input is read the way a
// human would: when there is no blank line, the first line that is neither a
// field nor a continuation starts the body — unless no well-known field was
// seen, in which case the whole input is text without a header.
func splitHeader(b []byte) (hdr, body []byte) {
	pos := 0
	fields, known := 0, false
	for pos < len(b) {
		line, next := nextLine(b, pos)
		if len(line) == 0 {
			return b[:pos], b[next:]
		}
		if line[0] == ' ' || line[0] == '\t' {
			if fields == 0 {
				break // a header cannot start with a continuation
			}
			pos = next
			continue
		}
		name := fieldName(line)
		if name == "" {
			break
		}
		fields++
		known = known || wellKnownField(name)
		pos = next
	}
	if pos >= len(b) {
		return b, nil // header only, no body
	}
	if fields == 0 || !known {
		return nil, b
	}
	return b[:pos], b[pos:]
}

// Bounds on one header block, so that a header bomb (millions of tiny
// fields) cannot make conversion take gigabytes: the SMTP listener refuses
// headers over its limits (1 MiB and 10000 fields by default), but mail from
// the sendmail shim or from an older spool arrives unchecked. These are
// above the listener's defaults, so what it accepts converts in full.
const (
	maxHeaderBytes  = 4 << 20
	maxHeaderFields = 20000
)

// droppedHeader says how much of a header block was left out.
type droppedHeader struct {
	fields int
	bytes  int
}

// capHeader cuts a header block after maxHeaderFields fields or
// maxHeaderBytes bytes, at a field boundary, and says what it left out.
// Fields that make the event (Subject, From, Content-Type, ...) found past
// the cut are kept, the first of each name, so a header bomb still shows
// its subject and its body decodes.
func capHeader(hdr []byte) ([]byte, droppedHeader) {
	if len(hdr) <= maxHeaderBytes && bytes.Count(hdr, []byte{'\n'}) < maxHeaderFields {
		return hdr, droppedHeader{} // cannot hold more fields than lines
	}
	pos, fields, cut := 0, 0, -1
	var d droppedHeader
	var rescued []byte
	seen := map[string]bool{}
	keep := false // the current field (after the cut) is rescued
	for pos < len(hdr) {
		line, next := nextLine(hdr, pos)
		if hdr[pos] != ' ' && hdr[pos] != '\t' {
			fields++
			if cut < 0 && (fields > maxHeaderFields || next > maxHeaderBytes) {
				cut = pos
			}
			keep = false
			if cut >= 0 {
				name := strings.ToLower(fieldName(line))
				if rescue[name] && !seen[name] && len(rescued)+next-pos <= maxRescuedBytes {
					seen[name], keep = true, true
				} else {
					d.fields++
				}
			}
		}
		if keep && len(rescued)+next-pos <= maxRescuedBytes {
			rescued = append(rescued, hdr[pos:next]...)
		}
		pos = next
	}
	if cut < 0 {
		return hdr, droppedHeader{}
	}
	d.bytes = len(hdr) - cut - len(rescued)
	out := make([]byte, 0, cut+len(rescued))
	return append(append(out, hdr[:cut]...), rescued...), d
}

// rescue names the fields capHeader keeps past its cut; maxRescuedBytes
// bounds them together.
var rescue = map[string]bool{
	"subject": true, "from": true, "to": true, "date": true, "message-id": true, "mime-version": true,
	"content-type": true, "content-transfer-encoding": true, "content-disposition": true,
}

const maxRescuedBytes = 64 << 10

// note is the line that tells the reader what was left out ("" when
// nothing was).
func (d droppedHeader) note() string {
	if d.fields == 0 {
		return ""
	}
	return fmt.Sprintf("[herald: %d more header fields (%d bytes) were left out: over the limit of %d fields or %d bytes]",
		d.fields, d.bytes, maxHeaderFields, maxHeaderBytes)
}

// readHeader parses a header block that splitHeader accepted, at most
// maxHeaderFields fields and maxHeaderBytes of it. textproto returns what it
// parsed so far even on error, which is what we want.
func readHeader(hdr []byte) (textproto.Header, droppedHeader) {
	if len(hdr) == 0 {
		return textproto.Header{}, droppedHeader{}
	}
	hdr, dropped := capHeader(hdr)
	// ReadHeader needs the terminating empty line.
	term := "\n"
	if len(hdr) > 0 && hdr[len(hdr)-1] != '\n' {
		term = "\n\n"
	}
	buf := make([]byte, 0, len(hdr)+2)
	buf = append(append(buf, hdr...), term...)
	h, _ := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(buf), 4096))
	return h, dropped
}

// parseParams parses a Content-Type or Content-Disposition value. The
// media type comes back lower-case ("" when absent). Values that
// mime.ParseMediaType rejects (unterminated quotes, duplicate parameters,
// stray semicolons) are parsed leniently instead, first value winning.
func parseParams(v string) (string, map[string]string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", map[string]string{}
	}
	if mt, params, err := mime.ParseMediaType(v); err == nil {
		return mt, params
	}
	pieces := strings.Split(v, ";")
	mt := strings.ToLower(strings.TrimSpace(pieces[0]))
	params := map[string]string{}
	for _, p := range pieces[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		val = strings.TrimPrefix(val, `"`)
		val = strings.TrimSuffix(val, `"`)
		if _, dup := params[k]; !dup && k != "" {
			params[k] = val
		}
	}
	return mt, params
}

// guessBoundary finds the boundary of a multipart that does not name one:
// the first line starting with "--".
func guessBoundary(body []byte) string {
	for pos := 0; pos < len(body); {
		line, next := nextLine(body, pos)
		if len(line) > 2 && line[0] == '-' && line[1] == '-' {
			return string(bytes.TrimRight(line[2:], " \t"))
		}
		pos = next
	}
	return ""
}

// splitMultipart cuts a multipart body into its parts. Text before the first
// delimiter (preamble) and after the close delimiter (epilogue) is dropped.
// A missing close delimiter ends the last part at the end of the input, so
// a truncated message keeps everything it has. found reports whether any
// delimiter line was seen at all.
func splitMultipart(body []byte, boundary string) (parts [][]byte, found bool) {
	if boundary == "" {
		return nil, false
	}
	delim := []byte("--" + boundary)
	start := -1 // start of the current part's content, -1 before the first delimiter
	for pos := 0; pos < len(body); {
		line, next := nextLine(body, pos)
		if bytes.HasPrefix(line, delim) {
			rest := line[len(delim):]
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing || len(bytes.TrimLeft(rest, " \t")) == 0 {
				found = true
				if start >= 0 {
					parts = append(parts, body[start:contentEnd(body, start, pos)])
				}
				if closing {
					return parts, true
				}
				start = next
			}
		}
		pos = next
	}
	if start >= 0 && start <= len(body) {
		parts = append(parts, body[start:])
	}
	return parts, found
}

// contentEnd is where a part's content ends when its delimiter line starts
// at pos: the line break before the delimiter belongs to the delimiter.
func contentEnd(body []byte, start, pos int) int {
	end := pos
	if end > start && body[end-1] == '\n' {
		end--
		if end > start && body[end-1] == '\r' {
			end--
		}
	}
	return end
}
