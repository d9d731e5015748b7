package mailconv

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// transferDecode undoes a Content-Transfer-Encoding. It never fails: broken
// base64 or quoted-printable yields whatever could be decoded, and unknown
// encodings (7bit, 8bit, binary, x-uuencode, garbage) pass through unchanged.
func transferDecode(cte string, b []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return decodeBase64(b)
	case "quoted-printable":
		return decodeQP(b)
	default:
		return b
	}
}

func isBase64Byte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// decodeBase64 is a lenient base64 decoder: it skips every byte outside the
// alphabet (line breaks, spaces, stray garbage), treats '=' as the end of a
// segment (some mailers pad every line separately) and decodes an incomplete
// final quantum as far as it goes. The standard decoders stop at the first
// bad byte, which would lose the rest of the text.
func decodeBase64(b []byte) []byte {
	out := make([]byte, 0, len(b)/4*3+3)
	seg := make([]byte, 0, 1024)
	flush := func() {
		n := len(seg)
		if n%4 == 1 { // a single leftover character carries no whole byte
			n--
		}
		if n > 0 {
			l := len(out)
			out = out[:l+base64.RawStdEncoding.DecodedLen(n)]
			// RawStdEncoding is not strict, so odd trailing bits are
			// ignored; the input is alphabet-only, so this cannot fail.
			m, _ := base64.RawStdEncoding.Decode(out[l:], seg[:n])
			out = out[:l+m]
		}
		seg = seg[:0]
	}
	for _, c := range b {
		switch {
		case isBase64Byte(c):
			seg = append(seg, c)
			if len(seg) == cap(seg) && len(seg)%4 == 0 {
				flush()
			}
		case c == '=':
			flush()
		}
	}
	flush()
	return out
}

// base64Size is the decoded size of base64 data, computed without decoding
// it (attachments are only listed, never decoded).
func base64Size(b []byte) int64 {
	var n int64
	for _, c := range b {
		if isBase64Byte(c) {
			n++
		}
	}
	return n * 3 / 4
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// decodeQP is a lenient quoted-printable decoder: "=XY" (either case) is a
// byte, "=" before optional blanks and a line break is a soft line break, and
// any other "=" is kept literally. mime/quotedprintable returns an error on
// such input and would lose the rest of the part.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		switch {
		case j == len(b): // "=" at the very end: drop it
			i = j - 1
			continue
		case b[j] == '\n':
			i = j
			continue
		case b[j] == '\r':
			if j+1 < len(b) && b[j+1] == '\n' {
				j++
			}
			i = j
			continue
		}
		if i+2 < len(b) {
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, '=')
	}
	return out
}

// decodedSize is an attachment's size after transfer decoding.
func decodedSize(cte string, b []byte) int64 {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64Size(b)
	case "quoted-printable":
		return int64(len(decodeQP(b)))
	default:
		return int64(len(b))
	}
}

// cp1252 maps the bytes 0x80–0x9F of windows-1252 to Unicode. The five
// undefined positions map to the C1 control of the same value, as the WHATWG
// encoding standard does; 0xA0–0xFF are the same as ISO-8859-1.
var cp1252 = [32]rune{
	'\u20AC', '\u0081', '\u201A', '\u0192', '\u201E', '\u2026', '\u2020', '\u2021',
	'\u02C6', '\u2030', '\u0160', '\u2039', '\u0152', '\u008D', '\u017D', '\u008F',
	'\u0090', '\u2018', '\u2019', '\u201C', '\u201D', '\u2022', '\u2013', '\u2014',
	'\u02DC', '\u2122', '\u0161', '\u203A', '\u0153', '\u009D', '\u017E', '\u0178',
}

// decodeWindows1252 converts windows-1252 (a superset of ISO-8859-1's
// printable range) to UTF-8. Every byte maps to a character, so it cannot
// fail.
func decodeWindows1252(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/4)
	for _, c := range b {
		switch {
		case c < 0x80:
			sb.WriteByte(c)
		case c < 0xA0:
			sb.WriteRune(cp1252[c-0x80])
		default:
			sb.WriteRune(rune(c))
		}
	}
	return sb.String()
}

// guess8bit decodes text whose charset is unknown or missing: UTF-8 when it
// is valid UTF-8 (pure ASCII included), else windows-1252, the most common
// 8-bit charset in unlabelled mail.
func guess8bit(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return decodeWindows1252(b)
}

// normCharset lower-cases a charset label and removes quotes and blanks.
func normCharset(label string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(label), `"' `))
}

// decodeCharset converts text in the named charset to UTF-8. It never fails
// and always returns valid UTF-8. A declared UTF-8 is trusted (invalid bytes
// become U+FFFD); a missing or ASCII label, or a charset nobody knows, is
// guessed with guess8bit.
func decodeCharset(label string, b []byte) string {
	switch l := normCharset(label); l {
	case "utf-8", "utf8":
		return strings.ToValidUTF8(string(b), "\uFFFD")
	case "", "us-ascii", "ascii", "us", "ansi_x3.4-1968", "iso646-us", "unknown-8bit", "x-unknown", "8bit", "unknown":
		return guess8bit(b)
	case "iso-8859-1", "latin1", "iso8859-1", "iso_8859-1", "l1", "windows-1252", "cp1252":
		// Labelled latin1 is in practice windows-1252 (HTML does the same).
		return decodeWindows1252(b)
	default:
		r, err := charset.Reader(l, bytes.NewReader(b))
		if err != nil {
			return guess8bit(b)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			// A decoder that gives up midway: keep what it produced and
			// guess the rest would be wrong, so guess the whole text.
			return guess8bit(b)
		}
		return strings.ToValidUTF8(string(out), "\uFFFD")
	}
}

// wordDecoder decodes RFC 2047 encoded words. Its CharsetReader never fails,
// so DecodeHeader never fails either: a word in an unknown charset is
// guessed like unlabelled 8-bit text instead of being left encoded.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(label string, r io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return strings.NewReader(decodeCharset(label, b)), nil
}}

// maxHeaderValue bounds the header text handed to the RFC 2047 decoder and
// kept in the event; a longer value is cut. Real subjects are far shorter;
// the bound keeps a pathological megabyte header cheap.
const maxHeaderValue = 16 << 10

// decodeHeaderValue turns a raw (unfolded) header value into display text:
// raw 8-bit bytes (bsmtp sends UTF-8 subjects unencoded) are guessed, RFC
// 2047 words are decoded, and the result is one line of valid UTF-8 without
// control characters.
func decodeHeaderValue(v string) string {
	if len(v) > maxHeaderValue {
		v = cutUTF8(v, maxHeaderValue)
	}
	if !utf8.ValidString(v) {
		v = decodeWindows1252([]byte(v))
	}
	if dec, err := wordDecoder.DecodeHeader(v); err == nil {
		v = dec
	}
	return sanitizeLine(v)
}

// sanitizeLine makes s safe as a one-line value: valid UTF-8, NUL and other
// control characters removed, line breaks and tabs turned into spaces.
func sanitizeLine(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\t' || c == '\n' || c == '\r':
			sb.WriteByte(' ')
		case c < 0x20 || c == 0x7f:
			// dropped
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// cleanText normalises a decoded text body: CRLF and lone CR become LF, NUL
// bytes are removed, and invalid UTF-8 becomes U+FFFD.
func cleanText(s string) string {
	if strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, 0) < 0 {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\x00")
		if i < 0 {
			sb.WriteString(s)
			break
		}
		sb.WriteString(s[:i])
		// A CR before LF is dropped (the LF follows), a lone CR becomes LF;
		// NUL is dropped.
		if s[i] == '\r' && (i+1 == len(s) || s[i+1] != '\n') {
			sb.WriteByte('\n')
		}
		s = s[i+1:]
	}
	return strings.ToValidUTF8(sb.String(), "\uFFFD")
}

// cutUTF8 returns at most n bytes of s, cut at a character boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
