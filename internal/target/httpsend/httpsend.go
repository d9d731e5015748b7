// Package httpsend holds the HTTP plumbing the gotify, webhook and ntfy
// targets share: a client that does not carry credentials to other hosts,
// bounded one-line response snippets for errors, and masking of secrets in
// everything a target reports.
package httpsend

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"herald/internal/handlebars"
	"herald/internal/target"
	"herald/internal/version"
)

// UserAgent is what herald sends as User-Agent.
var UserAgent = "herald/" + version.Version

// NewClient returns a target's default client: timeout per request, proxy
// from the given function or the environment, and redirects followed only
// within the same host, since Go re-sends custom headers (X-Gotify-Key,
// webhook headers) to wherever a redirect points.
func NewClient(proxy func(*http.Request) (*url.URL, error), timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	tr.Proxy = proxy
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 || req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// Response bodies are read up to readLimit (so that a secret the server
// echoes is masked whole before the snippet is cut) and the snippet kept
// for errors is at most snippetLen bytes.
const (
	readLimit  = 64 << 10
	snippetLen = 200
)

// ReadSnippet reads (part of) a response body, closes it, and returns its
// start as one printable line.
func ReadSnippet(body io.ReadCloser) string {
	b, _ := io.ReadAll(io.LimitReader(body, readLimit))
	// Drain a little more so the connection can be reused; the rest is
	// dropped with the connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(body, readLimit))
	_ = body.Close() // a read-side close error says nothing about delivery
	return string(b)
}

// OneLine collapses whitespace and control characters and cuts s to
// snippetLen bytes at a character boundary.
func OneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if len(s) <= snippetLen {
		return s
	}
	n := snippetLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Mask replaces every occurrence of each secret, in every form herald
// itself may have written it (Forms), with "<masked>" (proxmox-notify's
// word for it). The textual forms match whatever the case of their ASCII
// letters (servers lower-case URLs); the base64 forms match exactly.
// Longer forms win where forms overlap, so a secret containing another is
// masked whole; overlapping or adjacent matches become one "<masked>".
func Mask(s string, secrets ...string) string {
	type form struct {
		text string
		fold bool
	}
	var all []form
	for _, sec := range secrets {
		text, b64 := forms(sec)
		for _, f := range text {
			all = append(all, form{asciiLower(f), true})
		}
		for _, f := range b64 {
			all = append(all, form{f, false})
		}
	}
	if len(all) == 0 || s == "" {
		return s
	}
	slices.SortStableFunc(all, func(a, b form) int { return len(b.text) - len(a.text) })
	lower := asciiLower(s) // same byte offsets as s
	masked := make([]bool, len(s))
	any := false
	for _, f := range all {
		in := s
		if f.fold {
			in = lower
		}
		for off := 0; off < len(in); {
			i := strings.Index(in[off:], f.text)
			if i < 0 {
				break
			}
			i += off
			for j := i; j < i+len(f.text); j++ {
				masked[j] = true
			}
			any = true
			off = i + len(f.text)
		}
	}
	if !any {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if !masked[i] {
			b.WriteByte(s[i])
			continue
		}
		b.WriteString("<masked>")
		for i+1 < len(s) && masked[i+1] {
			i++
		}
	}
	return b.String()
}

// asciiLower lower-cases ASCII letters only, so byte offsets stay the same.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// minBase64Secret is the shortest secret whose base64 forms are masked: a
// shorter one yields so few characters that they would match unrelated
// text.
const minBase64Secret = 6

// Forms returns the ways a secret can appear in what a server sends back,
// as herald put it into a request: as it is; percent-encoded as a path
// segment (url.PathEscape), a path (Go's client re-escapes request paths),
// a form value (url.QueryEscape) or by the webhook template helper
// url-encode, each also with lower-case hex (servers re-encode); JSON-escaped as the json and escape helpers write it, as Go's
// encoding/json writes it (\u003c) and with '/' escaped; and base64
// (standard and URL alphabets, padded or not), including the part of it
// that any base64 text containing the secret at some offset must contain
// (a Basic credential "user:secret" encodes the secret there).
func Forms(sec string) []string {
	text, b64 := forms(sec)
	return append(text, b64...)
}

// forms returns Forms split into the textual forms and the base64 ones.
func forms(sec string) (text, b64 []string) {
	if sec == "" {
		return nil, nil
	}
	text = []string{sec}
	// Go's client re-escapes a request path its own way (EscapedPath), so
	// that is what a server echoing the URL saw.
	pct := []string{url.QueryEscape(sec), url.PathEscape(sec), handlebars.URLEncode(sec),
		(&url.URL{Path: sec}).EscapedPath()}
	for _, f := range pct {
		text = append(text, f, lowerHex(f))
	}
	esc := handlebars.JSONEscape(sec)
	text = append(text, esc, strings.ReplaceAll(esc, "/", `\/`))
	if b, err := json.Marshal(sec); err == nil {
		g := string(b[1 : len(b)-1])
		text = append(text, g, strings.ReplaceAll(g, "/", `\/`))
	}
	slices.Sort(text)
	text = slices.Compact(text)
	// A server may also echo a request part in base64 (a body, a Basic
	// credential), with the secret in any of the forms above inside.
	for _, t := range text {
		if len(t) < minBase64Secret {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			b64 = append(b64, enc.EncodeToString([]byte(t)))
			raw := enc.WithPadding(base64.NoPadding)
			// At offset k in the encoded data, the characters whose six bits
			// all come from t are those from bit 8k on, up to bit 8(k+n):
			// the same whatever surrounds it.
			for k := 0; k < 3; k++ {
				e := raw.EncodeToString(append(make([]byte, k), t...))
				from, to := (8*k+5)/6, 8*(k+len(t))/6
				b64 = append(b64, e[from:to])
			}
		}
	}
	slices.Sort(b64)
	return text, slices.Compact(b64)
}

// lowerHex lower-cases the hex digits of the percent escapes in s.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			i += 2
		}
	}
	return string(b)
}

// scrubbedError carries an error's text with secrets masked. It does not
// unwrap (the original text must not be reachable), but errors.Is still
// sees through it so callers can tell a cancelled context or a timeout.
type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string        { return e.msg }
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.cause, target) }

// Scrubbed returns err with every secret masked in its text.
func Scrubbed(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: Mask(err.Error(), secrets...), cause: err}
}

// Classify turns an HTTP outcome into a target error (target.ClassifyHTTP)
// whose text and Reply carry the server's answer snippet and the redacted
// URL, with every secret masked. name starts the message ("gotify", ...).
func Classify(name, rawURL string, status int, h http.Header, err error, snippet string, secrets ...string) error {
	return ClassifyAs(name+" "+target.RedactURL(rawURL), status, h, err, snippet, secrets...)
}

// ClassifyAs is Classify for a caller that names the request itself: what
// starts the message as it is (no URL in it is redacted here).
func ClassifyAs(what string, status int, h http.Header, err error, snippet string, secrets ...string) error {
	res := target.ClassifyHTTP(status, h, err)
	var te *target.Error
	if !errors.As(res, &te) {
		return res
	}
	if snippet != "" && status >= 300 {
		te.Reply += ": " + snippet
		te.Err = fmt.Errorf("%w: %s", te.Err, snippet)
	}
	te.Err = Scrubbed(fmt.Errorf("%s: %w", what, te.Err), secrets...)
	te.Reply = Mask(te.Reply, secrets...)
	return te
}
