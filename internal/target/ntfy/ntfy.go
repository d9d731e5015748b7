// Package ntfy holds herald's own ntfy target (Proxmox has none; its docs
// use a webhook instead). It publishes with ntfy's documented HTTP API
// (https://docs.ntfy.sh/publish/): POST SERVER/TOPIC with the message as
// the body and the title, priority and tags in headers.
//
// Choices, and why:
//
//   - Headers, not the JSON form: ntfy turns a JSON publish back into
//     headers and rejects one longer than about its message limit with 400,
//     while a plain body is always accepted (see MaxBytes).
//   - X-Title, X-Priority, X-Tags rather than their short aliases: a bare
//     "Priority" header is also RFC 9218's, which proxies such as
//     Cloudflare set or rewrite and ntfy then ignores.
//   - A non-ASCII title (or tag) is sent as an RFC 2047 encoded word
//     (=?UTF-8?b?…?=), which ntfy decodes: raw UTF-8 in a header is
//     mangled by some proxies, an encoded word is plain ASCII.
//   - The body is cut to MaxBytes (4096, ntfy's default message limit) at
//     a character boundary with a "… (truncated)" line: a longer body would
//     become a file attachment, or be refused where attachments are off.
//   - Priority from severity when not configured: info 2 (low: no sound),
//     notice 3 (default), warning 4 (high), error 5 (max), unknown 3 —
//     Proxmox's gotify mapping (1/3/5/9/3) moved onto ntfy's 1–5 scale,
//     except that unknown (all unclassified system mail) stays audible.
//   - A severity tag first, shown by ntfy as an emoji: notice
//     "information_source", warning "warning", error "rotating_light".
package ntfy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/httpsend"
)

// Defaults.
const (
	DefaultServer   = "https://ntfy.sh"
	DefaultMaxBytes = 4096
	Timeout         = 10 * time.Second
)

// Options configure an ntfy target.
type Options struct {
	// Server is the ntfy base URL, possibly with a path prefix; empty
	// means https://ntfy.sh.
	Server string
	// Topic is the topic name ([-_A-Za-z0-9]{1,64}). On a public server
	// the topic is the password, so it is masked in errors like the token.
	Topic string
	// Token is an access token (tk_…) sent as a bearer token; optional and
	// secret.
	Token config.Secret
	// Priority is 1 (min) to 5 (max); 0 derives it from the severity.
	Priority int
	// Tags are added after the severity tag (tags may not contain commas).
	Tags []string
	// MaxBytes bounds the message body; 0 means DefaultMaxBytes, a
	// negative value sends the body whole and lets the server decide.
	MaxBytes int
	// Client sends the requests; nil means a client with a 10 s timeout,
	// the proxy below, and redirects followed only within the same host.
	Client *http.Client
	// Proxy is an explicit HTTP proxy URL; empty means the environment.
	// Ignored when Client is set.
	Proxy string
}

// String describes the options without token or topic.
func (o Options) String() string {
	return fmt.Sprintf("ntfy{server=%s topic=%s token=%s}", target.RedactURL(o.Server), target.SecretMark(o.Topic != ""), target.SecretMark(!o.Token.IsEmpty()))
}

// GoString keeps %#v from printing secrets.
func (o Options) GoString() string { return o.String() }

// LogValue keeps slog from printing secrets.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

var topicRE = regexp.MustCompile(`^[-_A-Za-z0-9]{1,64}$`)

// Target is an ntfy target. It is safe for concurrent use.
type Target struct {
	server   string
	url      string
	token    config.Secret
	topic    string
	priority int
	tags     []string
	maxBytes int
	client   *http.Client
}

// New checks the options. Its errors never contain the token or topic.
func New(opt Options) (*Target, error) {
	t := &Target{server: opt.Server, token: opt.Token, topic: opt.Topic, priority: opt.Priority,
		maxBytes: opt.MaxBytes, client: opt.Client}
	if t.server == "" {
		t.server = DefaultServer
	}
	if t.maxBytes == 0 {
		t.maxBytes = DefaultMaxBytes
	}
	u, err := url.Parse(t.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("ntfy: server %s is not an http(s) base URL", target.RedactURL(t.server))
	}
	if !topicRE.MatchString(opt.Topic) {
		return nil, errors.New("ntfy: topic must be 1 to 64 letters, digits, '-' or '_'")
	}
	t.url = strings.TrimSuffix(t.server, "/") + "/" + opt.Topic
	if strings.ContainsFunc(opt.Token.Reveal(), func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return nil, errors.New("ntfy: token contains spaces or control characters")
	}
	if opt.Priority < 0 || opt.Priority > 5 {
		return nil, fmt.Errorf("ntfy: priority %d is not 1 to 5 (or 0 for the severity's)", opt.Priority)
	}
	if opt.MaxBytes > 0 && opt.MaxBytes < 64 {
		return nil, fmt.Errorf("ntfy: max bytes %d is too small", opt.MaxBytes)
	}
	for _, tag := range opt.Tags {
		if tag == "" || strings.ContainsAny(tag, ",\r\n") {
			return nil, fmt.Errorf("ntfy: tag %q is empty or contains a comma or line break", tag)
		}
		t.tags = append(t.tags, strings.TrimSpace(tag))
	}
	if t.client == nil {
		var proxy func(*http.Request) (*url.URL, error)
		if opt.Proxy != "" {
			p, err := url.Parse(opt.Proxy)
			if err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https" && p.Scheme != "socks5") {
				return nil, fmt.Errorf("ntfy: proxy %s is not a proxy URL", target.RedactURL(opt.Proxy))
			}
			proxy = http.ProxyURL(p)
		}
		t.client = httpsend.NewClient(proxy, Timeout)
	}
	return t, nil
}

// String names the target without token or topic.
func (t *Target) String() string { return "ntfy " + target.RedactURL(t.server) }

// GoString keeps %#v from printing secrets.
func (t *Target) GoString() string { return t.String() }

// LogValue keeps slog from printing secrets.
func (t *Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Priority is the ntfy priority for a severity: info 2, notice 3,
// warning 4, error 5, unknown 3.
func Priority(s event.Severity) int {
	switch s {
	case event.Info:
		return 2
	case event.Notice:
		return 3
	case event.Warning:
		return 4
	case event.Error:
		return 5
	}
	return 3
}

// SeverityTag is the emoji tag for a severity, or "".
func SeverityTag(s event.Severity) string {
	switch s {
	case event.Notice:
		return "information_source"
	case event.Warning:
		return "warning"
	case event.Error:
		return "rotating_light"
	}
	return ""
}

const truncMark = "\n… (truncated)"

// message returns the body to publish: valid UTF-8, at most maxBytes.
func (t *Target) message(ev *event.Event) (body string, useTitle bool) {
	body = strings.ToValidUTF8(ev.Body, "\uFFFD")
	useTitle = true
	if strings.TrimSpace(body) == "" {
		// ntfy would show "triggered"; the title says more.
		body, useTitle = strings.ToValidUTF8(ev.Title, "\uFFFD"), false
		if strings.TrimSpace(body) == "" {
			body = "(empty notification)"
		}
	}
	if t.maxBytes > 0 && len(body) > t.maxBytes {
		n := t.maxBytes - len(truncMark)
		for n > 0 && !utf8.RuneStart(body[n]) {
			n--
		}
		body = body[:n] + truncMark
	}
	return body, useTitle
}

// headerText makes s one line and, when it is not plain ASCII, an RFC 2047
// encoded word.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return mime.BEncoding.Encode("UTF-8", strings.TrimSpace(s))
}

// Request builds the publish request for ev without sending it.
func (t *Target) Request(ctx context.Context, ev *event.Event) (*http.Request, error) {
	body, useTitle := t.message(ev)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(body))
	if err != nil {
		return nil, target.Permanent(t.scrub(fmt.Errorf("ntfy %s: %w", target.RedactURL(t.url), err)))
	}
	h := req.Header
	h.Set("User-Agent", httpsend.UserAgent)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if useTitle && strings.TrimSpace(ev.Title) != "" {
		h.Set("X-Title", headerText(ev.Title))
	}
	p := t.priority
	if p == 0 {
		p = Priority(ev.Severity)
	}
	h.Set("X-Priority", strconv.Itoa(p))
	var tags []string
	if st := SeverityTag(ev.Severity); st != "" {
		tags = append(tags, st)
	}
	tags = append(tags, t.tags...)
	if len(tags) > 0 {
		h.Set("X-Tags", headerText(strings.Join(tags, ",")))
	}
	if !t.token.IsEmpty() {
		h.Set("Authorization", "Bearer "+t.token.Reveal())
	}
	return req, nil
}

// Deliver publishes ev. Errors are classified by target.ClassifyHTTP; their
// text and Reply never contain the token or the topic.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	req, err := t.Request(ctx, ev)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return t.classify(0, nil, err, "")
	}
	snippet := httpsend.OneLine(httpsend.Mask(httpsend.ReadSnippet(resp.Body), t.token.Reveal(), t.topic))
	return t.classify(resp.StatusCode, resp.Header, nil, snippet)
}

// classify turns the outcome into a target error with the token and topic masked.
func (t *Target) classify(status int, h http.Header, err error, snippet string) error {
	return httpsend.Classify("ntfy", t.url, status, h, err, snippet, t.token.Reveal(), t.topic)
}

func (t *Target) scrub(err error) error { return httpsend.Scrubbed(err, t.token.Reveal(), t.topic) }

// IgnoresMail tells the delivery queue that this target never reads the raw
// mail (target.MailBlind).
func (t *Target) IgnoresMail() bool { return true }
