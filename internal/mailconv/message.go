package mailconv

import (
	"bytes"
	"fmt"
	"herald/internal/mailhdr"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
)

// MaxBodyBytes caps the text body of a message. The rest is replaced by a
// note saying how much was cut; the raw message always stays complete.
const MaxBodyBytes = 1 << 20

// maxListedAttachments bounds the attachment list appended to the body.
const maxListedAttachments = 100

// Header gives read access to a message's header fields with their values
// decoded for display: RFC 2047 words decoded, raw 8-bit text converted to
// UTF-8, folding removed, control characters dropped. A value longer than
// 16 KiB is cut there (real ones are far shorter).
type Header struct {
	h textproto.Header
}

// Get returns the decoded value of the first field named key
// (case-insensitive), or "" when there is none.
func (h Header) Get(key string) string {
	if !h.h.Has(key) {
		return ""
	}
	return decodeHeaderValue(h.h.Get(key))
}

// Values returns the decoded values of every field named key, in order.
func (h Header) Values(key string) []string {
	raw := h.h.Values(key)
	if len(raw) == 0 {
		return nil
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		out[i] = decodeHeaderValue(v)
	}
	return out
}

// Has reports whether a field named key is present (even if empty).
func (h Header) Has(key string) bool { return h.h.Has(key) }

// Raw returns the undecoded value of the first field named key.
func (h Header) Raw(key string) string { return h.h.Get(key) }

// Len returns the number of header fields.
func (h Header) Len() int { return h.h.Len() }

// Attachment describes a MIME part that is not inlined into the body.
type Attachment struct {
	Name        string // file name ("" when the part has none)
	ContentType string // media type, lower-case, e.g. "application/pdf"
	Size        int64  // size in bytes after transfer decoding
}

// Message is the parsed view of a mail that classifiers see. All strings
// are valid UTF-8.
type Message struct {
	Header    Header
	Subject   string // decoded Subject ("" when absent)
	From      string // decoded From header as text
	To        string // decoded To headers, joined with ", "
	MessageID string // Message-ID header value, angle brackets kept

	// Body is the chosen text body: the text/plain alternative, or the
	// HTML one rendered as text. Line ends are \n, trailing whitespace is
	// trimmed, and a longer text than MaxBodyBytes keeps its head and its
	// tail with a note between them saying how much was cut.
	// The attachment list is not part of it.
	Body string
	// BodyType is the media type Body was made from: "text/plain",
	// "text/html", or "" when the message has no text body.
	BodyType    string
	Attachments []Attachment

	// Raw is the message exactly as given to Parse. It may be a mapping
	// of the mail's file that is valid only while the daemon processes the
	// mail (docs/limits.md, "Memory"): a classifier must not keep it.
	Raw []byte
}

// part is one node of a message's MIME tree.
type part struct {
	header    textproto.Header
	mediaType string // lower-case, "" when Content-Type is absent
	params    map[string]string
	body      []byte // still transfer-encoded
	children  []*part
}

// Parse reads a mail. It never fails and never panics: whatever the input,
// the result holds every header and as much text as could be recovered.
func Parse(raw []byte) (m *Message) {
	m = &Message{Raw: raw}
	defer func() {
		if recover() != nil {
			// Last line of defence against a bug here or in a library:
			// the notification still goes out, with the raw text.
			*m = Message{Raw: raw, Body: capBody(trimEnd(cleanText(string(raw)))), BodyType: "text/plain"}
		}
	}()

	b := mailhdr.StripFromLine(loneCRToLF(raw))
	hdr, body := splitHeader(b)
	th, dropped := readHeader(hdr)
	h := Header{th}
	m.Header = h
	m.Subject = h.Get("Subject")
	m.From = strings.Join(h.Values("From"), ", ")
	m.To = strings.Join(h.Values("To"), ", ")
	m.MessageID = h.Get("Message-Id")

	budget := maxParts
	root := build(h.h, body, 0, &budget)
	chosen := root
	if len(root.children) > 0 {
		chosen = pick(root)
	} else if textKind(root.mediaType, true) == "" {
		chosen = nil // a lone non-text part is an attachment, not a body
	}
	if chosen != nil {
		var head, tail string
		var skipped int
		head, tail, m.BodyType, skipped = chosen.text()
		if tail == "" {
			head = trimEnd(head)
		}
		m.Body = capBodyParts(head, trimEnd(tail), skipped)
	}
	collectAttachments(root, chosen, &m.Attachments)
	if note := dropped.note(); note != "" {
		m.Body = note + "\n\n" + m.Body
	}
	return m
}

// build parses a MIME entity and, for multiparts, its children.
func build(h textproto.Header, body []byte, depth int, budget *int) *part {
	p := &part{header: h, body: body}
	p.mediaType, p.params = parseParams(h.Get("Content-Type"))
	if !strings.HasPrefix(p.mediaType, "multipart/") || depth >= maxDepth || *budget <= 0 {
		return p
	}
	raws, found := splitMultipart(body, p.params["boundary"])
	if !found {
		// No boundary named, or one that never occurs (seen with
		// hand-made mails): try the first "--" line of the body.
		if guess := guessBoundary(body); guess != "" {
			raws, _ = splitMultipart(body, guess)
		}
	}
	for _, r := range raws {
		if *budget <= 0 {
			break
		}
		*budget--
		ph, pb := splitHeader(r)
		h, _ := readHeader(ph) // a part's excess header fields say nothing
		p.children = append(p.children, build(h, pb, depth+1, budget))
	}
	// A multipart without any part (wrong boundary, no delimiter at all)
	// stays a leaf and is shown as text: best effort beats an empty body.
	return p
}

// textKind says whether a part of this media type can be the body:
// "text/plain", "text/html", or "". Parts without (or with an unparsable, or
// an unsplittable multipart) Content-Type are plain text. At the top level
// any text/* type is the body.
func textKind(mt string, top bool) string {
	switch {
	case mt == "text/html":
		return "text/html"
	case mt == "text/plain", mt == "", !strings.Contains(mt, "/"), strings.HasPrefix(mt, "multipart/"):
		return "text/plain"
	case top && strings.HasPrefix(mt, "text/"):
		return "text/plain"
	}
	return ""
}

// disposition returns the part's Content-Disposition type and file name
// (from filename=, else the Content-Type name=), decoded.
func (p *part) disposition() (disp, name string) {
	disp, params := parseParams(p.header.Get("Content-Disposition"))
	name = params["filename"]
	if name == "" {
		name = p.params["name"]
	}
	if name != "" {
		name = decodeHeaderValue(name) // RFC 2047 in file names is common
	}
	return disp, name
}

// bodyCandidate reports whether a part inside a multipart may be the body:
// inline text/plain or text/html without a file name.
func (p *part) bodyCandidate() bool {
	if len(p.children) > 0 || textKind(p.mediaType, false) == "" {
		return false
	}
	disp, name := p.disposition()
	return disp != "attachment" && name == ""
}

// pick chooses the body among a multipart's parts, as JMAP's textBody
// (which Proxmox uses) does: in multipart/alternative the text/plain part,
// else the HTML one; in any other multipart the first text part.
func pick(p *part) *part {
	if len(p.children) == 0 {
		if p.bodyCandidate() {
			return p
		}
		return nil
	}
	var html *part
	for _, c := range p.children {
		got := pick(c)
		if got == nil {
			continue
		}
		if p.mediaType != "multipart/alternative" || textKind(got.mediaType, false) == "text/plain" {
			return got
		}
		if html == nil {
			html = got
		}
	}
	return html
}

// text decodes a leaf part into UTF-8 text, rendering HTML. A part larger
// than the input cap is decoded only at its two ends: head is the text of
// its beginning, tail that of its end ("" when the part was decoded
// whole), and skipped the number of source bytes between them.
func (p *part) text() (head, tail, kind string, skipped int) {
	data := transferDecode(p.header.Get("Content-Transfer-Encoding"), p.body)
	kind = textKind(p.mediaType, true)
	// The text is cut to MaxBodyBytes anyway: decoding all of a 50 MB body
	// to keep 1 MB only costs memory (several copies of it). HTML shrinks
	// when rendered, so more of it is read.
	limit := textInputCap
	if kind == "text/html" {
		limit = htmlInputCap
	}
	var end []byte
	if len(data) > limit {
		cut := limit / 2
		if i := bytes.LastIndexByte(data[:cut], '\n'); i > cut/2 {
			cut = i + 1
		}
		from := len(data) - limit/2
		if i := bytes.IndexByte(data[from:], '\n'); i >= 0 && i < limit/4 {
			from += i + 1
		}
		skipped = from - cut
		data, end = data[:cut], data[from:]
	}
	conv := func(b []byte) string {
		if kind == "text/html" {
			label := p.params["charset"]
			if label == "" {
				label = sniffHTMLCharset(data)
			}
			return cleanText(htmlToText(cleanText(decodeCharset(label, b))))
		}
		return cleanText(decodeCharset(p.params["charset"], b))
	}
	head = conv(data)
	if end != nil {
		tail = conv(end)
	}
	if kind != "text/html" {
		kind = "text/plain"
	}
	return head, tail, kind, skipped
}

// How much of a text part's decoded bytes are turned into the body.
const (
	textInputCap = 4 * MaxBodyBytes
	htmlInputCap = 16 * MaxBodyBytes
)

// sniffHTMLCharset finds a <meta charset> declaration near the start of an
// HTML body whose Content-Type names no charset.
func sniffHTMLCharset(b []byte) string {
	if len(b) > 1024 {
		b = b[:1024]
	}
	s := asciiLower(string(b))
	i := strings.Index(s, "charset=")
	if i < 0 {
		return ""
	}
	s = strings.TrimLeft(s[i+len("charset="):], `"' `)
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':')
	})
	if end >= 0 {
		s = s[:end]
	}
	return s
}

// collectAttachments lists every leaf that is an attachment: a part with
// disposition attachment, a file name, or a non-text type. The body part
// and other inline text (the unused HTML alternative) are not listed.
func collectAttachments(p, body *part, out *[]Attachment) {
	if len(p.children) > 0 {
		for _, c := range p.children {
			collectAttachments(c, body, out)
		}
		return
	}
	if p == body {
		return
	}
	disp, name := p.disposition()
	if disp != "attachment" && name == "" && textKind(p.mediaType, false) != "" {
		return
	}
	if disp != "attachment" && name == "" && strings.HasPrefix(p.mediaType, "text/") {
		return // inline text such as text/calendar beside the body
	}
	mt := p.mediaType
	if mt == "" || !strings.Contains(mt, "/") {
		mt = "application/octet-stream"
	}
	*out = append(*out, Attachment{Name: name, ContentType: sanitizeLine(mt),
		Size: decodedSize(p.header.Get("Content-Transfer-Encoding"), p.body)})
}

// trimEnd removes trailing whitespace (blank lines included).
func trimEnd(s string) string { return strings.TrimRightFunc(s, unicode.IsSpace) }

// capBody bounds a text to about MaxBodyBytes: see capBodyParts.
func capBody(s string) string { return capBodyParts(s, "", 0) }

// capBodyParts bounds the text head + (skipped bytes left out) + tail to
// about MaxBodyBytes. A longer text keeps its first and its last half
// MiB, cut at line ends where one is near and always at character
// boundaries, with a note between them saying how many bytes were cut:
// the last lines of a log are where the error is.
func capBodyParts(head, tail string, skipped int) string {
	if tail == "" && skipped == 0 && len(head) <= MaxBodyBytes {
		return head
	}
	h := cutLineUTF8(head, MaxBodyBytes/2)
	rest := head[len(h):]
	if tail == "" { // one text: its tail is what follows the head
		tail, rest = rest, ""
	}
	t := tailLineUTF8(tail, MaxBodyBytes/2)
	cut := len(rest) + skipped + len(tail) - len(t)
	if cut == 0 {
		return h + t
	}
	h = strings.TrimRight(h, "\n")
	t = strings.TrimLeft(t, "\n")
	var sb strings.Builder
	sb.Grow(len(h) + len(t) + 48)
	sb.WriteString(h)
	if h != "" {
		sb.WriteByte('\n')
	}
	fmt.Fprintf(&sb, "[... %d bytes cut here ...]", cut)
	if t != "" {
		sb.WriteByte('\n')
		sb.WriteString(t)
	}
	return sb.String()
}

// cutLineUTF8 returns at most n bytes of the start of s, ending at a line
// end when there is one in the second half of those n bytes.
func cutLineUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	h := cutUTF8(s, n)
	if i := strings.LastIndexByte(h, '\n'); i >= n/2 {
		return h[:i+1]
	}
	return h
}

// tailLineUTF8 returns at most n bytes of the end of s, starting after a
// line end when there is one in the first half of those n bytes.
func tailLineUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	t := s[i:]
	if j := strings.IndexByte(t, '\n'); j >= 0 && j < n/2 {
		return t[j+1:]
	}
	return t
}

// attachmentList renders the list appended to an event body.
func attachmentList(atts []Attachment) string {
	var sb strings.Builder
	sb.WriteString("Attachments:")
	for i, a := range atts {
		if i == maxListedAttachments {
			fmt.Fprintf(&sb, "\n- ... and %d more", len(atts)-i)
			break
		}
		name := a.Name
		if name == "" {
			name = "(unnamed)"
		}
		fmt.Fprintf(&sb, "\n- %s (%s, %d bytes)", name, a.ContentType, a.Size)
	}
	return sb.String()
}
