// Package target holds what every notification target shares: the small
// Target interface the delivery queue calls, the optional Verifier that lets
// a local target say after a crash whether an interrupted delivery happened,
// the Error type that tells the queue whether to retry, and one
// classification helper per transport (SMTP, HTTP) so that every target
// treats a 4xx reply or a 503 the same way.
//
// Targets know nothing of the router, the spool or the queue.
package target

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"herald/internal/event"
)

// Target delivers one event somewhere. Deliver must honour ctx (the queue
// gives every attempt a deadline) and should return an error made by
// Temporary or Permanent; an unclassified error is retried.
type Target interface {
	Deliver(ctx context.Context, ev *event.Event) error
}

// MailBlind is implemented by targets that never read ev.Mail (the raw
// message) and say so: the delivery queue then does not load a mail that
// may be tens of megabytes for them.
type MailBlind interface {
	IgnoresMail() bool
}

// IgnoresMail reports whether t declares that it never reads ev.Mail.
func IgnoresMail(t Target) bool {
	mb, ok := t.(MailBlind)
	return ok && mb.IgnoresMail()
}

// Batcher is implemented by targets that can deliver several events at
// once more cheaply than one by one: a local file target appends them in
// order under one open and lock, and makes them durable with one fsync
// (docs/flow.md, step 6). DeliverBatch returns one result per event, in the
// order of evs; nil means that event is delivered. A failure leaves the
// destination as it was before the failed part, so each failed event can be
// delivered again without a second copy.
type Batcher interface {
	DeliverBatch(ctx context.Context, evs []*event.Event) []error
}

// Verifier is implemented by targets that can tell, after a crash, whether
// a delivery that was in flight actually happened. Local targets (file,
// mbox) can; remote ones cannot, and the queue then delivers again
// (at-least-once).
type Verifier interface {
	Delivered(ctx context.Context, ev *event.Event) (bool, error)
}

// Error classifies a delivery failure. Temporary errors are retried with
// backoff until the queue's maximum age; permanent ones go to the dead
// letters at once.
type Error struct {
	Err  error
	Temp bool
	// RetryAfter is the earliest retry the remote side asked for (HTTP
	// Retry-After); 0 when it said nothing. The queue waits at least this long.
	RetryAfter time.Duration
	// Reply is the server's answer, for `herald test` to show. It never
	// holds a secret: helpers fill it from status lines, not from requests.
	Reply string
}

// Error returns the wrapped error's text.
func (e *Error) Error() string {
	if e.Err == nil {
		if e.Temp {
			return "temporary failure"
		}
		return "permanent failure"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the failure is worth retrying.
func (e *Error) Temporary() bool { return e.Temp }

// Temporary marks err as worth retrying, no earlier than retryAfter from now
// (0: whenever the backoff says). A nil err stays nil.
func Temporary(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	if retryAfter < 0 {
		retryAfter = 0
	}
	return &Error{Err: err, Temp: true, RetryAfter: retryAfter, Reply: Reply(err)}
}

// Permanent marks err as not worth retrying. A nil err stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, Reply: Reply(err)}
}

// IsTemporary reports whether err should be retried. An error that nobody
// classified is temporary: retrying until the maximum age is safer than
// dropping a notification on an error nobody thought about. A nil error is
// not temporary.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var te interface{ Temporary() bool }
	if errors.As(err, &te) {
		return te.Temporary()
	}
	return true
}

// RetryAfter returns the delay the remote side asked for, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Reply returns the server's answer recorded in err, or "".
func Reply(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reply
	}
	return ""
}

// ClassifySMTP classifies the outcome of one SMTP exchange. code is the
// server's reply code, 0 when there was no reply (connection refused, reset,
// timeout, TLS failure). 4xx and connection errors are temporary, 5xx
// permanent; a nil err with a code below 400 is success.
func ClassifySMTP(code int, err error) error {
	if err == nil {
		if code < 400 {
			return nil
		}
		err = fmt.Errorf("smtp: server replied %d", code)
	}
	var e *Error
	if errors.As(err, &e) {
		return err // already classified by a deeper layer
	}
	switch {
	case code >= 500 && code < 600:
		return &Error{Err: err, Reply: err.Error()}
	case code >= 400 && code < 500:
		return &Error{Err: err, Temp: true, Reply: err.Error()}
	default:
		// No reply, or a nonsensical code: the connection failed somewhere,
		// which is worth another try.
		return &Error{Err: err, Temp: true}
	}
}

// ClassifyHTTP classifies the outcome of one HTTP request: err is the
// transport error (connection, TLS, timeout), status and header the
// response's. 2xx is success; 408, 425, 429 and 5xx are temporary and honour
// Retry-After (seconds or HTTP-date); any other status is permanent (a
// redirect that the client did not follow is a configuration problem).
// Transport errors are temporary. The error text names the status only: the
// request URL may carry a token, so callers add RedactURL(url) themselves.
func ClassifyHTTP(status int, header http.Header, err error) error {
	return classifyHTTP(status, header, err, time.Now())
}

func classifyHTTP(status int, header http.Header, err error, now time.Time) error {
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		// Strip the URL (which may carry a token) from *url.Error, keeping the
		// operation and the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return &Error{Err: err, Temp: true}
	}
	if status >= 200 && status < 300 {
		return nil
	}
	reply := fmt.Sprintf("HTTP %d", status)
	if t := http.StatusText(status); t != "" {
		reply += " " + t
	}
	e := &Error{Err: errors.New("http: server replied " + reply), Reply: reply}
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500 && status < 600:
		e.Temp = true
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	}
	return e
}

// maxRetryAfter caps what a server can ask for, so that the Duration cannot
// overflow; the queue's maximum age bounds the wait anyway.
const maxRetryAfter = 365 * 24 * time.Hour

// parseRetryAfter reads RFC 9110 Retry-After: delay-seconds or an HTTP-date.
// Unparseable or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// RedactURL returns u in a form safe for logs and errors: scheme and host
// (with port) are kept, the userinfo is dropped, every query value and the
// fragment are dropped (keys are kept, `?token=…`, unless they contain digits
// or odd characters and so might be a token themselves), and any path beyond
// "/" becomes "/…". The path goes entirely because too many services put the
// credential there (ntfy topics, Slack and Discord webhooks, Uptime Kuma and
// healthchecks.io push URLs) and no heuristic tells a token from a word; the
// target's name in the same log line says which endpoint it was. An
// unparseable URL is replaced as a whole, since it may still hold a secret.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparseable URL>"
	}
	if p.Opaque != "" {
		// mailto:x, tel:… — nothing here identifies an endpoint safely.
		return p.Scheme + ":…"
	}
	var b strings.Builder
	if p.Scheme != "" {
		b.WriteString(p.Scheme)
		b.WriteString("://")
	}
	b.WriteString(p.Host)
	if p.Path != "" && p.Path != "/" || p.RawPath != "" {
		b.WriteString("/…")
	} else if p.Path == "/" {
		b.WriteString("/")
	}
	if p.RawQuery != "" {
		q, err := url.ParseQuery(p.RawQuery)
		if err != nil || len(q) == 0 {
			b.WriteString("?…")
		} else {
			keys := make([]string, 0, len(q))
			for k := range q {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for i, k := range keys {
				if i == 0 {
					b.WriteByte('?')
				} else {
					b.WriteByte('&')
				}
				if plainKey(k) {
					b.WriteString(k)
				} else {
					b.WriteString("…")
				}
				b.WriteString("=…")
			}
		}
	}
	return b.String()
}

// plainKey reports whether a query key looks like a parameter name rather
// than a token: letters, '_', '-', '.', at most 32 characters, no digits.
func plainKey(k string) bool {
	if k == "" || len(k) > 32 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// SecretMark is how a target's String shows a credential: "<secret>" when
// one is set, "<none>" when not, never the value.
func SecretMark(set bool) string {
	if !set {
		return "<none>"
	}
	return "<secret>"
}
