// Package webhook holds the webhook target: an HTTP request whose URL,
// header values and body are Handlebars templates, built exactly as
// proxmox-notify's webhook endpoint builds it (src/endpoints/webhook.rs;
// docs/proxmox-notify.md §2.5):
//
//   - template data {"title", "message", "severity", "timestamp" (epoch
//     seconds, an integer), "fields" (strings), "secrets"};
//   - no HTML escaping; helpers url-encode, json and escape;
//   - method POST, PUT or GET; each configured header added in order with
//     its rendered value; the rendered body (empty when none is
//     configured); Content-Length on every request except a GET with an
//     empty body; no Content-Type unless a header sets one;
//   - every secret value that occurs in an error is replaced by <masked>.
//
// The config layer decodes the base64 header values, body and secrets of
// notifications.cfg before calling New.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/handlebars"
	"herald/internal/target"
	"herald/internal/target/httpsend"
)

// Timeout is the default client's limit for one request, as in Proxmox.
const Timeout = 10 * time.Second

// Header is one configured request header; Value is a template.
type Header struct {
	Name, Value string
}

// Options configure a webhook target.
type Options struct {
	// URL is a template for the request URL. As in Proxmox's schema, the
	// scheme and host must be literal (http or https); path and query may
	// use templates.
	URL string
	// Method is post, put or get (any case).
	Method string
	// Headers are sent in order; a name may repeat.
	Headers []Header
	// Body is a template for the request body; empty means no body.
	Body string
	// Secrets are available to templates as secrets.NAME. Their values are
	// masked in every error.
	Secrets map[string]config.Secret
	// Client sends the requests; nil means a client with a 10 s timeout,
	// the proxy below, and redirects followed only within the same host.
	Client *http.Client
	// Proxy is an explicit HTTP proxy URL; empty means the environment.
	// Ignored when Client is set.
	Proxy string
}

// String describes the options with secret values hidden.
func (o Options) String() string {
	names := make([]string, 0, len(o.Secrets))
	for n := range o.Secrets {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Sprintf("webhook{%s %s headers=%d secrets=%v}",
		strings.ToUpper(o.Method), httpsend.Mask(target.RedactURL(o.URL), secretValues(o.Secrets)...), len(o.Headers), names)
}

// GoString keeps %#v from printing secrets.
func (o Options) GoString() string { return o.String() }

// LogValue keeps slog from printing secrets.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// Target is a webhook target. It is safe for concurrent use.
type Target struct {
	method  string
	urlSrc  string
	url     *handlebars.Template
	headers []header
	body    *handlebars.Template // nil: empty body
	secrets map[string]config.Secret
	client  *http.Client
}

type header struct {
	name  string
	value *handlebars.Template
}

// New checks the options and parses the templates. Its errors are
// configuration problems and never contain secret values.
func New(opt Options) (*Target, error) {
	t := &Target{urlSrc: opt.URL, client: opt.Client, secrets: map[string]config.Secret{}}
	for k, v := range opt.Secrets {
		t.secrets[k] = v
	}
	if err := t.init(opt); err != nil {
		return nil, httpsend.Scrubbed(fmt.Errorf("webhook: %w", err), t.masked()...)
	}
	return t, nil
}

func (t *Target) init(opt Options) error {
	switch m := strings.ToUpper(opt.Method); m {
	case http.MethodPost, http.MethodPut, http.MethodGet:
		t.method = m
	case "":
		return errors.New("method is required (post, put or get)")
	default:
		return fmt.Errorf("method %q is not post, put or get", opt.Method)
	}
	if err := checkURLTemplate(opt.URL); err != nil {
		return err
	}
	var err error
	if t.url, err = handlebars.Parse(opt.URL); err != nil {
		return fmt.Errorf("url template: %w", err)
	}
	for _, h := range opt.Headers {
		if !validHeaderName(h.Name) {
			return fmt.Errorf("header name %q is not a valid HTTP header name", h.Name)
		}
		v, err := handlebars.Parse(h.Value)
		if err != nil {
			return fmt.Errorf("header %s value template: %w", h.Name, err)
		}
		t.headers = append(t.headers, header{name: h.Name, value: v})
	}
	if opt.Body != "" {
		if t.body, err = handlebars.Parse(opt.Body); err != nil {
			return fmt.Errorf("body template: %w", err)
		}
	}
	if t.client == nil {
		var proxy func(*http.Request) (*url.URL, error)
		if opt.Proxy != "" {
			u, err := url.Parse(opt.Proxy)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") {
				return fmt.Errorf("proxy %s is not a proxy URL", target.RedactURL(opt.Proxy))
			}
			proxy = http.ProxyURL(u)
		}
		t.client = httpsend.NewClient(proxy, Timeout)
	}
	return nil
}

// checkURLTemplate enforces what Proxmox's HTTP_URL_SCHEMA does: http or
// https, a literal host (templates only after it), no control characters.
func checkURLTemplate(s string) error {
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "https://"); !ok {
			return fmt.Errorf("url %s must start with http:// or https://", target.RedactURL(s))
		}
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("url contains control characters")
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	if host == "" || strings.ContainsAny(host, "{} \t@") {
		return fmt.Errorf("url %s: the host must be given literally", target.RedactURL(s))
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// masked reveals the secret values, longest first, for masking them in
// what the target reports.
func (t *Target) masked() []string { return secretValues(t.secrets) }

// secretValues reveals the values of m for masking them in errors.
func secretValues(m map[string]config.Secret) []string {
	vals := make([]string, 0, len(m))
	for _, v := range m {
		if !v.IsEmpty() {
			vals = append(vals, v.Reveal())
		}
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	return vals
}

// String names the target without secrets (the URL's path, which often
// holds a token, is dropped).
func (t *Target) String() string {
	return "webhook " + t.method + " " + httpsend.Mask(target.RedactURL(t.urlSrc), t.masked()...)
}

// GoString keeps %#v from printing secrets.
func (t *Target) GoString() string { return t.String() }

// LogValue keeps slog from printing secrets.
func (t *Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Data returns the template data for ev, as proxmox-notify builds it.
func (t *Target) Data(ev *event.Event) map[string]any {
	ts := ev.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	fields := make(map[string]any, len(ev.Fields))
	for k, v := range ev.Fields {
		fields[k] = v
	}
	secrets := make(map[string]any, len(t.secrets))
	for k, v := range t.secrets {
		secrets[k] = v.Reveal() // the request is built from this data
	}
	return map[string]any{
		"title":     ev.Title,
		"message":   ev.Body,
		"severity":  ev.Severity.String(),
		"timestamp": ts.Unix(),
		"fields":    fields,
		"secrets":   secrets,
	}
}

// Request renders the request for ev without sending it. Errors are
// permanent (a template or the URL it produced is broken) and masked.
func (t *Target) Request(ctx context.Context, ev *event.Event) (*http.Request, error) {
	req, err := t.request(ctx, ev)
	if err != nil {
		return nil, target.Permanent(httpsend.Scrubbed(fmt.Errorf("webhook: %w", err), t.masked()...))
	}
	return req, nil
}

func (t *Target) request(ctx context.Context, ev *event.Event) (*http.Request, error) {
	data := t.Data(ev)
	var body string
	if t.body != nil {
		var err error
		if body, err = t.body.Render(data); err != nil {
			return nil, fmt.Errorf("rendering body: %w", err)
		}
	}
	rawURL, err := t.url.Render(data)
	if err != nil {
		return nil, fmt.Errorf("rendering url: %w", err)
	}
	rawURL = escapeControls(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rendered url %s is not a valid http(s) URL", target.RedactURL(rawURL))
	}
	var r *bytes.Reader
	if body != "" {
		r = bytes.NewReader([]byte(body))
	}
	var req *http.Request
	if r != nil {
		req, err = http.NewRequestWithContext(ctx, t.method, u.String(), r)
	} else {
		// No body at all: Go then sends Content-Length: 0 for POST and PUT
		// and no Content-Length for GET, as Proxmox does.
		req, err = http.NewRequestWithContext(ctx, t.method, u.String(), http.NoBody)
	}
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", target.RedactURL(rawURL), err)
	}
	req.Header.Set("User-Agent", httpsend.UserAgent)
	userAgentSet := false
	for _, h := range t.headers {
		v, err := h.value.Render(data)
		if err != nil {
			return nil, fmt.Errorf("rendering header %s: %w", h.name, err)
		}
		v = headerValue(v)
		switch {
		case strings.EqualFold(h.name, "Host"):
			req.Host = v
		case strings.EqualFold(h.name, "User-Agent"):
			if !userAgentSet {
				req.Header.Del("User-Agent")
				userAgentSet = true
			}
			req.Header.Add(h.name, v)
		default:
			req.Header.Add(h.name, v)
		}
	}
	return req, nil
}

// headerValue makes a rendered header value sendable: a title or field
// that carries CR, LF, NUL or another control character (a mail's Subject
// can) would otherwise make every attempt fail the same way, a permanent
// failure for a notification that is fine. Each run of line breaks and
// every other control character but TAB becomes one space, so no header
// can be injected and the text stays readable. (Proxmox's HTTP client
// refuses such a value and the notification is lost.)
func headerValue(v string) string {
	if !strings.ContainsFunc(v, isCtl) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\r' || c == '\n':
			if i > 0 && (v[i-1] == '\r' || v[i-1] == '\n') {
				continue // one space per line break, CRLF included
			}
			b.WriteByte(' ')
		case c == 0:
			// dropped: NUL is never text
		case isCtl(rune(c)):
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isCtl reports the bytes HTTP forbids in a header value or URL: controls
// other than TAB, and DEL.
func isCtl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

// escapeControls percent-encodes the control characters a template put
// into the URL (a raw {{ title }} in the path), which url.Parse refuses:
// the server gets the text, the delivery does not fail for ever.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Deliver sends the request for ev. Template and URL problems are
// permanent; HTTP outcomes are classified by target.ClassifyHTTP. No error
// text or Reply contains a secret value.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	req, err := t.Request(ctx, ev)
	if err != nil {
		return err
	}
	where := httpsend.Mask(target.RedactURL(req.URL.String()), t.masked()...)
	resp, err := t.client.Do(req)
	if err != nil {
		return t.classify(where, 0, nil, err, "")
	}
	snippet := httpsend.OneLine(httpsend.Mask(httpsend.ReadSnippet(resp.Body), t.masked()...))
	return t.classify(where, resp.StatusCode, resp.Header, nil, snippet)
}

func (t *Target) classify(where string, status int, h http.Header, err error, snippet string) error {
	return httpsend.ClassifyAs("webhook "+t.method+" "+where, status, h, err, snippet, t.masked()...)
}

// IgnoresMail tells the delivery queue that this target never reads the raw
// mail (target.MailBlind).
func (t *Target) IgnoresMail() bool { return true }
