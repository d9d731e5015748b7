package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// NoSecretIn is the one secret-leak assertion of herald's tests: every
// credentialed target's test makes a delivery fail and hands the outcome
// here. Each value of shown (an error, the target, its options, the
// Reply, the target's log output, ... named by its key) is printed every
// way herald could print it — the fmt verbs %v, %+v, %#v and %s, the text
// of each error of an error's chain, and slog's JSON and text handlers
// (which go through LogValue) — and none of those may contain any of
// secrets (empty ones are ignored).
func NoSecretIn(t testing.TB, secrets []string, shown map[string]any) {
	t.Helper()
	for what, v := range shown {
		for form, text := range showings(v) {
			for _, s := range secrets {
				if s != "" && strings.Contains(text, s) {
					t.Errorf("secret %q shows in %s (%s): %s", s, what, form, text)
				}
			}
		}
	}
}

// showings returns the ways v can be printed, by name.
func showings(v any) map[string]string {
	out := map[string]string{
		"%v":  fmt.Sprintf("%v", v),
		"%+v": fmt.Sprintf("%+v", v),
		"%#v": fmt.Sprintf("%#v", v),
		"%s":  fmt.Sprintf("%s", v),
	}
	if err, ok := v.(error); ok {
		var chain strings.Builder
		for e := err; e != nil; e = errors.Unwrap(e) {
			chain.WriteString(e.Error())
			chain.WriteByte('\n')
		}
		out["error chain"] = chain.String()
	}
	var js, txt bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Error("shown", "value", v)
	slog.New(slog.NewTextHandler(&txt, nil)).Error("shown", "value", v)
	out["slog JSON"] = js.String()
	out["slog text"] = txt.String()
	return out
}
