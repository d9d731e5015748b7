package testkit

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// leaky hides its secret from %v but not from %#v or slog.
type leaky struct{ token string }

func (l leaky) String() string { return "leaky{<secret>}" }

// careful hides it everywhere.
type careful struct{ token string }

func (careful) String() string         { return "careful{<secret>}" }
func (c careful) GoString() string     { return c.String() }
func (c careful) LogValue() slog.Value { return slog.StringValue(c.String()) }

func TestNoSecretIn(t *testing.T) {
	const tok = "tok-S3CRET"
	tests := []struct {
		name  string
		shown any
		leaks []string // forms that must be reported
	}{
		{"clean error", errors.New("401 from server"), nil},
		{"error", fmt.Errorf("401: %s", tok), []string{"%v", "error chain", "slog JSON"}},
		{"wrapped cause", fmt.Errorf("delivery: %w", wrapped{msg: "ok", cause: errors.New(tok)}), []string{"error chain"}},
		{"%#v shows the field", leaky{tok}, []string{"%#v"}},
		{"careful", careful{tok}, nil},
		{"log text", "level=ERROR token=" + tok, []string{"%v", "%s", "slog text"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			NoSecretIn(r, []string{tok, ""}, map[string]any{"value": tc.shown})
			got := strings.Join(r.failures, "\n")
			if len(tc.leaks) == 0 && got != "" {
				t.Fatalf("reported a leak that is none:\n%s", got)
			}
			for _, form := range tc.leaks {
				if !strings.Contains(got, "("+form+")") {
					t.Errorf("leak through %s not reported; reported:\n%s", form, got)
				}
			}
		})
	}
}

// wrapped is an error whose own text hides its cause's.
type wrapped struct {
	msg   string
	cause error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.cause }
