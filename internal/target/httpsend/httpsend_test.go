package httpsend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"herald/internal/handlebars"
)

func TestMaskEveryForm(t *testing.T) {
	sec := `a/b "c"+d`
	in := strings.Join([]string{sec, "a%2Fb+%22c%22%2Bd", "a%2Fb%20%22c%22+d", `a\/b \"c\"+d`}, " | ")
	out := Mask(in, sec, "")
	if strings.Contains(out, "a/b") || strings.Contains(out, "%22c%22") || strings.Count(out, "<masked>") != 4 {
		t.Fatalf("Mask = %q", out)
	}
	// A secret containing another is masked whole.
	if got := Mask("tokentoken2", "token", "tokentoken2"); got != "<masked>" {
		t.Fatalf("nested: %q", got)
	}
}

func TestOneLine(t *testing.T) {
	long := strings.Repeat("ä", 300)
	got := OneLine("a\n\tb\x00c " + long)
	if strings.ContainsAny(got, "\n\t\x00") || len(got) > 200+len("…") || !strings.HasPrefix(got, "a b c ") {
		t.Fatalf("OneLine = %q (%d bytes)", got, len(got))
	}
}

func TestScrubbedKeepsIsButNotText(t *testing.T) {
	err := Scrubbed(fmt.Errorf("dial http://x/SECRET: %w", context.DeadlineExceeded), "SECRET")
	if strings.Contains(err.Error(), "SECRET") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
	if errors.Unwrap(err) != nil {
		t.Fatal("a scrubbed error must not unwrap to the unmasked one")
	}
}

// Redirects are followed on the same host only: Go would re-send custom
// credential headers to another host.
func TestClientRedirectPolicy(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the credential header reached another host: %q", r.Header.Get("X-Key"))
	}))
	defer other.Close()
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/away":
			http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/x", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	c := NewClient(nil, 5*time.Second)
	get := func(path string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("X-Key", "SECRET")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		ReadSnippet(resp.Body)
		return resp.StatusCode
	}
	if code := get("/same"); code != 200 {
		t.Fatalf("same-host redirect: %d", code)
	}
	if code := get("/away"); code != http.StatusFound {
		t.Fatalf("cross-host redirect followed: %d", code)
	}
}

// TestMaskEveryEncoding: a secret a server echoes back in any encoding
// herald itself produced (or a server's re-encoding of it) is masked.
func TestMaskEveryEncoding(t *testing.T) {
	secrets := []string{`p@ss "w<rd>/&x+y=z ä`, "S3CR3T-token/with space", "abcdefgh", "0123456789abcdefghijklmnopqrstuv"}
	goJSON := func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }
	encodings := map[string]func(string) string{
		"raw":                func(s string) string { return s },
		"path escape":        url.PathEscape,
		"form escape":        url.QueryEscape,
		"url-encode helper":  handlebars.URLEncode,
		"lower-case hex":     func(s string) string { return lowerHex(url.PathEscape(s)) },
		"lower-case form":    func(s string) string { return lowerHex(url.QueryEscape(s)) },
		"escape helper":      handlebars.JSONEscape,
		"go json":            goJSON,
		"json escaped slash": func(s string) string { return strings.ReplaceAll(goJSON(s), "/", `\/`) },
		"base64":             func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64url":          func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) },
		"basic auth":         func(s string) string { return base64.StdEncoding.EncodeToString([]byte("user:" + s)) },
		"basic auth 2":       func(s string) string { return base64.StdEncoding.EncodeToString([]byte("us:" + s + "!")) },
		"basic auth 3":       func(s string) string { return base64.StdEncoding.EncodeToString([]byte("u:" + s + "!!")) },
	}
	for _, sec := range secrets {
		for name, enc := range encodings {
			form := enc(sec)
			in := "error: got " + form + " which is wrong"
			out := Mask(in, sec)
			if !strings.Contains(out, "<masked>") {
				t.Errorf("%s of %q: not masked: %q", name, sec, out)
				continue
			}
			// What is left visible of a base64 form is a few bits at each
			// end; of every other form, nothing.
			left := strings.TrimSuffix(strings.TrimPrefix(out, "error: got "), " which is wrong")
			rest := strings.ReplaceAll(left, "<masked>", "")
			if strings.HasPrefix(name, "base64") || strings.HasPrefix(name, "basic") {
				if len(rest) > 12 {
					t.Errorf("%s of %q: too much left after masking: %q", name, sec, out)
				}
			} else if rest != "" {
				t.Errorf("%s of %q: %q left after masking: %q", name, sec, rest, out)
			}
		}
	}
	// Unrelated text stays.
	if got := Mask("nothing to see here", secrets...); got != "nothing to see here" {
		t.Errorf("unrelated text changed: %q", got)
	}
}
