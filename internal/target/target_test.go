package target

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type tempErr struct{ temp bool }

func (e tempErr) Error() string   { return "custom" }
func (e tempErr) Temporary() bool { return e.temp }

func TestIsTemporary(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"unclassified is retried", base, true},
		{"temporary", Temporary(base, 0), true},
		{"permanent", Permanent(base), false},
		{"wrapped permanent", fmt.Errorf("ctx: %w", Permanent(base)), false},
		{"wrapped temporary", fmt.Errorf("ctx: %w", Temporary(base, time.Second)), true},
		{"foreign Temporary()=false", tempErr{false}, false},
		{"foreign Temporary()=true", tempErr{true}, true},
		{"deadline", context.DeadlineExceeded, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTemporary(tc.err); got != tc.want {
				t.Errorf("IsTemporary(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if Temporary(nil, 0) != nil || Permanent(nil) != nil {
		t.Error("classifying nil must give nil")
	}
	if !errors.Is(Permanent(base), base) {
		t.Error("Permanent must wrap its error")
	}
	if got := RetryAfter(fmt.Errorf("x: %w", Temporary(base, 7*time.Second))); got != 7*time.Second {
		t.Errorf("RetryAfter = %v, want 7s", got)
	}
	if got := RetryAfter(base); got != 0 {
		t.Errorf("RetryAfter(unclassified) = %v, want 0", got)
	}
	if got := RetryAfter(Temporary(base, -time.Second)); got != 0 {
		t.Errorf("negative RetryAfter kept: %v", got)
	}
}

func TestClassifySMTP(t *testing.T) {
	tests := []struct {
		code    int
		err     error
		wantNil bool
		temp    bool
		reply   string
	}{
		{250, nil, true, false, ""},
		{354, nil, true, false, ""},
		{0, errors.New("dial tcp 127.0.0.1:25: connection refused"), false, true, ""},
		{421, errors.New("421 4.3.2 shutting down"), false, true, "421 4.3.2 shutting down"},
		{451, errors.New("451 4.3.0 try later"), false, true, "451 4.3.0 try later"},
		{550, errors.New("550 5.1.1 no such user"), false, false, "550 5.1.1 no such user"},
		{554, nil, false, false, "smtp: server replied 554"},
		{0, Permanent(errors.New("bad config")), false, false, ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d/%v", tc.code, tc.err), func(t *testing.T) {
			got := ClassifySMTP(tc.code, tc.err)
			if tc.wantNil {
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
				return
			}
			if got == nil {
				t.Fatal("got nil error")
			}
			if IsTemporary(got) != tc.temp {
				t.Errorf("temporary = %v, want %v", IsTemporary(got), tc.temp)
			}
			if Reply(got) != tc.reply {
				t.Errorf("reply = %q, want %q", Reply(got), tc.reply)
			}
		})
	}
}

func TestClassifyHTTP(t *testing.T) {
	now := time.Date(2025, 5, 23, 12, 0, 0, 0, time.UTC)
	hdr := func(v string) http.Header {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		return h
	}
	urlErr := &url.Error{Op: "Post", URL: "https://gotify.example/message?token=SECRETTOKEN", Err: errors.New("connection refused")}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		err        error
		wantNil    bool
		temp       bool
		retryAfter time.Duration
	}{
		{"200", 200, nil, nil, true, false, 0},
		{"204", 204, nil, nil, true, false, 0},
		{"connection", 0, nil, urlErr, false, true, 0},
		{"timeout", 0, nil, context.DeadlineExceeded, false, true, 0},
		{"301 not followed", 301, nil, nil, false, false, 0},
		{"400", 400, nil, nil, false, false, 0},
		{"401", 401, nil, nil, false, false, 0},
		{"404", 404, hdr("30"), nil, false, false, 0},
		{"408", 408, nil, nil, false, true, 0},
		{"429 seconds", 429, hdr("120"), nil, false, true, 120 * time.Second},
		{"429 date", 429, hdr("Fri, 23 May 2025 12:05:00 GMT"), nil, false, true, 5 * time.Minute},
		{"429 date past", 429, hdr("Fri, 23 May 2025 11:05:00 GMT"), nil, false, true, 0},
		{"429 garbage", 429, hdr("soon"), nil, false, true, 0},
		{"429 negative", 429, hdr("-5"), nil, false, true, 0},
		{"429 huge", 429, hdr("99999999999999999"), nil, false, true, maxRetryAfter},
		{"500", 500, nil, nil, false, true, 0},
		{"503 retry", 503, hdr(" 10 "), nil, false, true, 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyHTTP(tc.status, tc.header, tc.err, now)
			if tc.wantNil {
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
				return
			}
			if got == nil {
				t.Fatal("got nil error")
			}
			if IsTemporary(got) != tc.temp {
				t.Errorf("temporary = %v, want %v", IsTemporary(got), tc.temp)
			}
			if RetryAfter(got) != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", RetryAfter(got), tc.retryAfter)
			}
			if strings.Contains(got.Error(), "SECRETTOKEN") {
				t.Errorf("error leaks the URL's token: %v", got)
			}
		})
	}
	if r := Reply(ClassifyHTTP(503, nil, nil)); r != "HTTP 503 Service Unavailable" {
		t.Errorf("reply = %q", r)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://gotify.example.org/message?token=AbC123", "https://gotify.example.org/…?token=…"},
		{"https://user:pa55word@example.org:8443/", "https://example.org:8443/"},
		{"https://example.org", "https://example.org"},
		{"https://ntfy.sh/my-secret-topic", "https://ntfy.sh/…"},
		{"https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/…"},
		{"http://127.0.0.1:3001/api/push/Zk3x9?status=up&msg=OK&ping=", "http://127.0.0.1:3001/…?msg=…&ping=…&status=…"},
		{"https://example.org/?a2f9c0e1d=1", "https://example.org/?…=…"},
		{"https://example.org/x#frag-secret", "https://example.org/…"},
		{"https://example.org/a%2Fb", "https://example.org/…"},
		{"mailto:root@example.org", "mailto:…"},
		{"http://[::1]:8025/api/v1/events", "http://[::1]:8025/…"},
		{"://bad url with secret %zz", "<unparseable URL>"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := RedactURL(tc.in); got != tc.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzRedactURL checks that a secret placed in the userinfo, the path, a
// query value and the fragment never survives redaction.
func FuzzRedactURL(f *testing.F) {
	f.Add("example.org", "s3cr3t")
	f.Add("127.0.0.1:8080", "tk_ABCDEF0123")
	f.Add("[::1]", "a/b?c=d#e")
	f.Fuzz(func(t *testing.T, host, secret string) {
		u := "https://user:" + url.PathEscape(secret) + "@" + host + "/x/" + url.PathEscape(secret) +
			"?t=" + url.QueryEscape(secret) + "#" + url.PathEscape(secret)
		got := RedactURL(u)
		if len(secret) < 3 || strings.Contains("https://"+host+"/…?t=…<unparseable URL>", secret) {
			return // the secret is part of what may legitimately remain
		}
		for _, form := range []string{secret, url.PathEscape(secret), url.QueryEscape(secret)} {
			if strings.Contains(got, form) {
				t.Fatalf("RedactURL(%q) = %q still contains the secret %q", u, got, form)
			}
		}
	})
}

// FuzzParseRetryAfter checks that any header value gives a delay within
// [0, maxRetryAfter].
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "-1", "Fri, 23 May 2025 12:05:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2025, 5, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := parseRetryAfter(v, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v out of range", v, d)
		}
	})
}
