// Package httpsend holds the HTTP plumbing the gotify, webhook and ntfy
// targets share: a client that does not carry credentials to other hosts,
// bounded one-line response snippets for errors, and masking of secrets in
// everything a target reports.
package httpsend

import (
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

// Mask replaces every occurrence of each secret, also in its URL- and
// JSON-escaped forms, with "<masked>" (proxmox-notify's word for it).
func Mask(s string, secrets ...string) string {
	// Longest first, so that a secret containing another is masked whole.
	secrets = slices.Clone(secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec), jsonEscape(sec)} {
			s = strings.ReplaceAll(s, form, "<masked>")
		}
	}
	return s
}

func jsonEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "/", `\/`)
	return r.Replace(s)
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
	res := target.ClassifyHTTP(status, h, err)
	var te *target.Error
	if !errors.As(res, &te) {
		return res
	}
	if snippet != "" && status >= 300 {
		te.Reply += ": " + snippet
		te.Err = fmt.Errorf("%w: %s", te.Err, snippet)
	}
	te.Err = Scrubbed(fmt.Errorf("%s %s: %w", name, target.RedactURL(rawURL), te.Err), secrets...)
	te.Reply = Mask(te.Reply, secrets...)
	return te
}
