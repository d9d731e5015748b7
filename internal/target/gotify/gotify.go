// Package gotify holds the gotify target: it posts each event to a Gotify
// server's /message endpoint exactly as proxmox-notify's gotify endpoint
// does (src/endpoints/gotify.rs; docs/proxmox-notify.md §2.4): the token in
// both Authorization and X-Gotify-Key, the body wrapped in a Markdown code
// fence, and the priority derived from the severity.
//
// One deliberate difference: a trailing '/' on the server URL is dropped
// before "/message" is appended, where Proxmox concatenates blindly and
// requests "//message" (which Gotify answers with 404).
package gotify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/httpsend"
)

// Timeout is the default client's limit for one request, as in Proxmox.
const Timeout = 10 * time.Second

// Options configure a gotify target.
type Options struct {
	// Server is the Gotify base URL, e.g. http://gotify.example.com:8888.
	Server string
	// Token is the application token. It is a secret: it is sent only in
	// the request headers and never appears in errors or String().
	Token config.Secret
	// Client sends the requests; nil means a client with a 10 s timeout,
	// the proxy below, and redirects followed only within the same host
	// (a redirect elsewhere would carry the token with it).
	Client *http.Client
	// Proxy is an explicit HTTP proxy URL (Proxmox's datacenter.cfg
	// http_proxy); empty means the environment (HTTPS_PROXY, NO_PROXY...).
	// Ignored when Client is set.
	Proxy string
}

// String describes the options without the token.
func (o Options) String() string {
	return fmt.Sprintf("gotify{server=%s token=%s}", target.RedactURL(o.Server), target.SecretMark(!o.Token.IsEmpty()))
}

// GoString keeps %#v from printing the token.
func (o Options) GoString() string { return o.String() }

// LogValue keeps slog (text and JSON handlers) from printing the token.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// Validate reports configuration problems: the server must be an http or
// https URL with a host, the token must be set and fit in a header, and the
// proxy must parse. The config layer calls it so that mistakes surface at
// load time; Deliver reports the same problems as permanent errors.
func (o Options) Validate() error {
	_, err := messageURL(o.Server)
	if err != nil {
		return err
	}
	if o.Token.IsEmpty() {
		return errors.New("gotify: token is empty")
	}
	if strings.ContainsFunc(o.Token.Reveal(), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("gotify: token contains control characters")
	}
	if o.Client == nil && o.Proxy != "" {
		if _, err := parseProxy(o.Proxy); err != nil {
			return err
		}
	}
	return nil
}

// Target is a gotify target. It is safe for concurrent use.
type Target struct {
	server string
	url    string
	token  config.Secret
	client *http.Client
	err    error // configuration problem, reported by Deliver
}

// New returns a gotify target. Configuration problems (see
// Options.Validate) are reported by every Deliver as permanent errors.
func New(opt Options) *Target {
	t := &Target{server: opt.Server, token: opt.Token, client: opt.Client}
	t.err = opt.Validate()
	t.url, _ = messageURL(opt.Server)
	if t.client == nil {
		var proxy func(*http.Request) (*url.URL, error)
		if opt.Proxy != "" {
			if u, err := parseProxy(opt.Proxy); err == nil {
				proxy = http.ProxyURL(u)
			}
		}
		t.client = httpsend.NewClient(proxy, Timeout)
	}
	return t
}

// String names the target without its token.
func (t *Target) String() string { return "gotify " + target.RedactURL(t.server) }

// GoString keeps %#v from printing the token.
func (t *Target) GoString() string { return t.String() }

// LogValue keeps slog from printing the token.
func (t *Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// messageURL is server + "/message", with one trailing slash of server
// dropped.
func messageURL(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("gotify: server %s is not an http(s) URL", target.RedactURL(server))
	}
	return strings.TrimSuffix(server, "/") + "/message", nil
}

func parseProxy(p string) (*url.URL, error) {
	u, err := url.Parse(p)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") {
		return nil, fmt.Errorf("gotify: proxy %s is not a proxy URL", target.RedactURL(p))
	}
	return u, nil
}

// Priority maps a severity to a Gotify priority as Proxmox does: info 1,
// notice 3, warning 5, error 9, unknown 3.
func Priority(s event.Severity) int {
	switch s {
	case event.Info:
		return 1
	case event.Notice:
		return 3
	case event.Warning:
		return 5
	case event.Error:
		return 9
	}
	return 3
}

// message is the request body; field order follows Proxmox's json! call.
type message struct {
	Title    string `json:"title"`
	Message  string `json:"message"`
	Priority int    `json:"priority"`
	Extras   extras `json:"extras"`
}

type extras struct {
	ClientDisplay struct {
		ContentType string `json:"contentType"`
	} `json:"client::display"`
}

// Body returns the JSON that Deliver posts for ev: the body wrapped in a
// Markdown code fence (so that tables in Proxmox's text stay aligned).
func Body(ev *event.Event) ([]byte, error) {
	m := message{
		Title:    ev.Title,
		Message:  "```\n" + ev.Body + "\n```",
		Priority: Priority(ev.Severity),
	}
	m.Extras.ClientDisplay.ContentType = "text/markdown"
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Deliver posts ev to the server. Errors are classified by
// target.ClassifyHTTP; their text and Reply never contain the token.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	if t.err != nil {
		return target.Permanent(t.err)
	}
	body, err := Body(ev)
	if err != nil {
		return target.Permanent(fmt.Errorf("gotify: encoding message: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return target.Permanent(t.scrub(fmt.Errorf("gotify %s: %w", target.RedactURL(t.url), err)))
	}
	req.Header.Set("Authorization", "Bearer "+t.token.Reveal())
	req.Header.Set("X-Gotify-Key", t.token.Reveal())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", httpsend.UserAgent)

	resp, err := t.client.Do(req)
	if err != nil {
		return t.classify(0, nil, err, "")
	}
	// Mask before cutting, so that a token the server echoes cannot be
	// left half-visible at the cut.
	snippet := httpsend.OneLine(httpsend.Mask(httpsend.ReadSnippet(resp.Body), t.token.Reveal()))
	return t.classify(resp.StatusCode, resp.Header, nil, snippet)
}

// classify turns the outcome into a target error with the token masked.
func (t *Target) classify(status int, h http.Header, err error, snippet string) error {
	return httpsend.Classify("gotify", t.url, status, h, err, snippet, t.token.Reveal())
}

func (t *Target) scrub(err error) error { return httpsend.Scrubbed(err, t.token.Reveal()) }

// IgnoresMail tells the delivery queue that this target never reads the raw
// mail (target.MailBlind).
func (t *Target) IgnoresMail() bool { return true }
