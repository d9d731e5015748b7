// Package mailout builds the messages herald sends as mail: a composed
// multipart/alternative notification (Compose), a forwarded system mail
// passed on byte for byte (Forward, for sendmail-type targets), and a
// forwarded system mail re-headed for an SMTP relay (ForwardSMTP, Proxmox's
// build_forwarded_message). Everything here is pure: bytes and events in,
// bytes out, no clock and no I/O, so the output is reproducible in golden
// tests.
//
// Header values that come from events (title, field values) or from the
// configuration (author, addresses) are sanitised: control characters,
// CR and LF included, become spaces, so no event can inject a header.
package mailout

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"html"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"herald/internal/event"
	"herald/internal/mailhdr"
)

// Header is what a composed or re-headed message says about itself.
type Header struct {
	From      string    // address (addr-spec); a bare local part is qualified with Hostname
	Author    string    // display name for From; empty: the bare address
	To        []string  // recipients, all listed in To:
	Hostname  string    // qualifies bare addresses, and the default Message-ID's domain
	Date      time.Time // zero: the event's timestamp; both zero: no Date header
	MessageID string    // without angle brackets; empty: <event ID>@<Hostname>
}

// Limits from RFC 5322 §2.1.1: lines SHOULD stay within 78 characters and
// MUST stay within 998.
const (
	foldWidth  = 78
	maxLineLen = 998
	b64Width   = 76
)

const crlf = "\r\n"

// Compose renders ev as a multipart/alternative message (text/plain and
// text/html) with the headers o describes. The HTML part is the escaped text
// in <pre>, as Proxmox does when a template has no HTML variant. The text part
// ends with a small block listing severity, fields and event ID, so a reader
// of the mail sees what a matcher saw.
func Compose(ev *event.Event, o Header) []byte {
	text := textBody(ev)
	htmlText := "<html><body><pre>" + html.EscapeString(text) + "</pre></body></html>\n"
	textPart := part("text/plain", text)
	htmlPart := part("text/html", htmlText)
	boundary := pickBoundary(textPart, htmlPart)

	var b bytes.Buffer
	writeCommonHeaders(&b, ev, o)
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString(crlf)
	b.WriteString("This is a multi-part message in MIME format." + crlf + crlf)
	b.WriteString("--" + boundary + crlf)
	b.Write(textPart)
	b.WriteString(crlf + "--" + boundary + crlf)
	b.Write(htmlPart)
	b.WriteString(crlf + "--" + boundary + "--" + crlf)
	return b.Bytes()
}

// Forward returns the original mail of ev for sendmail-type targets: the raw
// bytes exactly as received, minus a leading mbox "From " envelope line
// (which a .forward pipe adds and which is not part of the message). It
// returns nil when ev carries no mail. The result shares ev's memory.
func Forward(ev *event.Event) []byte {
	if ev == nil || ev.Mail == nil {
		return nil
	}
	return mailhdr.StripFromLine(ev.Mail.Raw)
}

// ForwardSMTP re-heads the original mail of ev for an SMTP relay, as
// Proxmox's build_forwarded_message does: new From, To, Subject (the event
// title, i.e. the decoded original subject), Date, Message-ID and
// Auto-Submitted; the original MIME-Version, Content-Type and
// Content-Transfer-Encoding copied verbatim; and the original root body bytes
// unchanged. No other original header survives (Received, Delivered-To and
// the rest would leak local routing or loop back). Without a mail it falls
// back to Compose.
func ForwardSMTP(ev *event.Event, o Header) []byte {
	if ev == nil || ev.Mail == nil {
		return Compose(ev, o)
	}
	fields, body := splitMessage(mailhdr.StripFromLine(ev.Mail.Raw))
	var b bytes.Buffer
	writeCommonHeaders(&b, ev, o)
	for _, name := range []string{"MIME-Version", "Content-Type", "Content-Transfer-Encoding"} {
		for _, f := range fields {
			if strings.EqualFold(f.name, name) {
				b.Write(f.raw)
				break
			}
		}
	}
	b.WriteString(crlf)
	b.Write(body)
	return b.Bytes()
}

// writeCommonHeaders writes the headers every herald message carries.
func writeCommonHeaders(b *bytes.Buffer, ev *event.Event, o Header) {
	writeHeader(b, "From", formatFrom(o.Author, qualify(o.From, o.Hostname)))
	if len(o.To) > 0 {
		to := make([]string, 0, len(o.To))
		for _, r := range o.To {
			if r = qualify(r, o.Hostname); r != "" {
				to = append(to, r)
			}
		}
		writeHeader(b, "To", strings.Join(to, ", "))
	}
	writeHeader(b, "Subject", encodeUnstructured(title(ev), len("Subject: ")))
	date := o.Date
	if date.IsZero() && ev != nil {
		date = ev.Timestamp
	}
	if !date.IsZero() {
		writeHeader(b, "Date", date.Format(time.RFC1123Z))
	}
	if id := messageID(ev, o); id != "" {
		writeHeader(b, "Message-ID", "<"+id+">")
	}
	// RFC 3834: tells auto-responders (vacation replies) not to answer.
	writeHeader(b, "Auto-Submitted", "auto-generated")
}

func title(ev *event.Event) string {
	if ev == nil {
		return ""
	}
	return ev.Title
}

func messageID(ev *event.Event, o Header) string {
	id := sanitizeToken(o.MessageID)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if id != "" {
		return id
	}
	if ev == nil || ev.ID == "" {
		return ""
	}
	host := sanitizeToken(o.Hostname)
	if host == "" {
		host = "localhost"
	}
	return sanitizeToken(ev.ID) + "@" + host
}

// sanitizeToken keeps only printable ASCII without spaces, angle brackets and
// quotes: enough for message IDs and host names, safe in any header.
func sanitizeToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '<' || r == '>' || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// qualify sanitises an address and appends "@host" to a bare local part
// (Proxmox's default from-address is plain "root", which Postfix qualifies).
func qualify(addr, host string) string {
	addr = strings.TrimSpace(sanitizeAddress(addr))
	if addr == "" || strings.Contains(addr, "@") {
		return addr
	}
	if host = sanitizeToken(host); host == "" {
		return addr
	}
	return addr + "@" + host
}

// sanitizeAddress removes what may never appear in an address header:
// control characters (CR/LF above all), angle brackets and commas, which
// would split it into several addresses.
func sanitizeAddress(s string) string {
	s = strings.ToValidUTF8(s, "")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '<' || r == '>' || r == ',' {
			return -1
		}
		return r
	}, s)
}

// sanitizeText makes s a valid single-line UTF-8 header text: invalid bytes
// become U+FFFD, every control character (CR, LF, tab…) a space.
func sanitizeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// formatFrom renders `Author <addr>`. The display name is RFC 2047 encoded
// when it is not plain ASCII, else quoted when it holds anything but atext
// and spaces (Proxmox bug 6188: an author with a comma or "@" broke the
// header).
func formatFrom(author, addr string) string {
	author = strings.TrimSpace(sanitizeText(author))
	if author == "" {
		return addr
	}
	name := author
	if !isAtextPhrase(name) {
		name = quoteString(name)
	}
	// Judged on the quoted form: quoting can double the length of a word.
	if needsEncoding(author, 0) || needsEncoding(name, len("From: ")) {
		name = encodeWords(author, len("From: "))
	}
	if addr == "" {
		return name + " <>"
	}
	return name + " <" + addr + ">"
}

// isAtextPhrase reports whether s consists of RFC 5322 atext and spaces only,
// so that it can stand unquoted as a display name.
func isAtextPhrase(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ' ':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// encodeUnstructured returns s for an unstructured header (Subject): as is
// when it is short plain ASCII, else as RFC 2047 encoded words.
func encodeUnstructured(s string, prefix int) string {
	s = sanitizeText(s)
	if needsEncoding(s, prefix) {
		return encodeWords(s, prefix)
	}
	return s
}

// needsEncoding reports whether s cannot go into a header as plain text: it
// has non-ASCII characters, looks like an encoded word itself ("=?", which a
// reader would decode), or has a word too long to fold within 998 octets.
func needsEncoding(s string, prefix int) bool {
	if strings.Contains(s, "=?") {
		return true
	}
	// unit is the length of the stretch that writeHeader cannot fold: it
	// folds only before the last space ahead of a word, so runs of spaces
	// count with the word before them.
	unit := prefix
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c < ' ' || c == 0x7f {
			return true
		}
		if c != ' ' && i > 0 && s[i-1] == ' ' {
			unit = 1 // the space that moves to the continuation line
		}
		unit++
		if unit > maxLineLen-2 {
			return true
		}
	}
	return false
}

// encodeWords encodes s as space-separated "=?UTF-8?B?...?=" words of at
// most 75 characters each (RFC 2047 §2), never splitting a character. The
// spaces between words are where writeHeader folds; readers drop them.
//
// The first word is shortened so that it fits on the line after a header
// name of first characters ("Subject: " is 9): RFC 2047 §2 limits lines with
// encoded words to 76 characters.
func encodeWords(s string, first int) string {
	const prefix, suffix = "=?UTF-8?B?", "?="
	// 75 - len(prefix) - len(suffix) = 63 base64 characters, so 45 octets
	// (a multiple of 3, so no padding inside a run).
	maxOctets := (76 - first - len(prefix) - len(suffix)) / 4 * 3
	maxOctets = max(min(maxOctets, 45), 6)
	var b strings.Builder
	for len(s) > 0 {
		n := 0
		for n < len(s) {
			_, size := utf8.DecodeRuneInString(s[n:])
			if n+size > maxOctets && n > 0 {
				break
			}
			n += size
		}
		maxOctets = 45
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(prefix)
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s[:n])))
		b.WriteString(suffix)
		s = s[n:]
	}
	return b.String()
}

// writeHeader writes "Name: value" and folds it at spaces to keep lines
// within 78 characters where the value allows. Folding inserts CRLF before an
// existing space, so unfolding (removing CRLF) restores the value exactly.
// value must already be free of CR and LF.
func writeHeader(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(":")
	lineLen := len(name) + 1
	for i, w := range strings.Split(value, " ") {
		// Fold only before a non-empty word, so that no continuation line
		// consists of white space alone (RFC 5322 §3.2.2), and never before
		// the first one (the line would hold only "Name:").
		if i > 0 && w != "" && lineLen+1+len(w) > foldWidth {
			b.WriteString(crlf)
			lineLen = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		lineLen += 1 + len(w)
	}
	b.WriteString(crlf)
}

// textBody is the text/plain content: the event body, then the fields block.
func textBody(ev *event.Event) string {
	var b strings.Builder
	if ev != nil {
		body := normalizeNewlines(strings.ToValidUTF8(ev.Body, "\uFFFD"))
		b.WriteString(body)
		if body != "" && !strings.HasSuffix(body, "\n") {
			b.WriteByte('\n')
		}
	}
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
	// "-- " is the signature separator: mail readers dim what follows.
	b.WriteString("-- \n")
	if ev == nil {
		return b.String()
	}
	b.WriteString("severity: " + ev.Severity.String() + "\n")
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(sanitizeText(k) + ": " + sanitizeText(ev.Fields[k]) + "\n")
	}
	if ev.ID != "" {
		b.WriteString("event-id: " + sanitizeText(ev.ID) + "\n")
	}
	return b.String()
}

func normalizeNewlines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// part renders one MIME body part (headers, blank line, content) for text
// whose line ends are "\n". Plain ASCII with short lines goes as 7bit,
// anything else as base64, as Proxmox does.
func part(mediaType, text string) []byte {
	var b bytes.Buffer
	writeHeader(&b, "Content-Type", mediaType+"; charset=utf-8")
	if is7bit(text) {
		writeHeader(&b, "Content-Transfer-Encoding", "7bit")
		b.WriteString(crlf)
		b.WriteString(strings.ReplaceAll(text, "\n", crlf))
		return b.Bytes()
	}
	writeHeader(&b, "Content-Transfer-Encoding", "base64")
	b.WriteString(crlf)
	enc := base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(text, "\n", crlf)))
	for len(enc) > b64Width {
		b.WriteString(enc[:b64Width] + crlf)
		enc = enc[b64Width:]
	}
	b.WriteString(enc)
	return b.Bytes()
}

// is7bit reports whether text may travel as 7bit (RFC 2045 §2.7): ASCII
// without NUL, lines of at most 998 octets.
func is7bit(text string) bool {
	line := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\n' {
			line = 0
			continue
		}
		if c == 0 || c >= 0x80 || c == '\r' {
			return false
		}
		if line++; line > maxLineLen {
			return false
		}
	}
	return true
}

// pickBoundary derives the boundary from the parts' content, so Compose stays
// deterministic, and checks that no part contains it.
func pickBoundary(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	sum := h.Sum(nil)
	for {
		boundary := "herald-" + hex.EncodeToString(sum[:12])
		clash := false
		for _, p := range parts {
			if bytes.Contains(p, []byte("--"+boundary)) {
				clash = true
			}
		}
		if !clash {
			return boundary
		}
		next := sha256.Sum256(sum)
		sum = next[:]
	}
}

// field is one header field as it appeared: its name and its raw lines
// (continuations included), re-terminated with CRLF.
type field struct {
	name string
	raw  []byte
}

// splitMessage splits raw into header fields and the body bytes. It is
// lenient, like mail-parser: the header ends at the first empty line, or at
// the first line that is neither a field nor a continuation (that line then
// starts the body).
func splitMessage(raw []byte) ([]field, []byte) {
	var fields []field
	rest := raw
	for len(rest) > 0 {
		line, next := rest, []byte(nil)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, next = rest[:i+1], rest[i+1:]
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			return fields, next // the blank line separates header and body
		}
		if content[0] == ' ' || content[0] == '\t' {
			if len(fields) == 0 {
				return fields, rest
			}
			f := &fields[len(fields)-1]
			f.raw = append(append(f.raw, content...), crlf...)
			rest = next
			continue
		}
		colon := bytes.IndexByte(content, ':')
		if colon <= 0 || !isFieldName(content[:colon]) {
			return fields, rest
		}
		fields = append(fields, field{
			name: string(content[:colon]),
			raw:  append(bytes.Clone(content), crlf...),
		})
		rest = next
	}
	return fields, nil
}

// isFieldName reports whether b is an RFC 5322 field name (printable ASCII
// except colon and space).
func isFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
