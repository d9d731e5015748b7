package handlebars

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzData = map[string]any{
	"title":     "Backup <ok> \"q\"",
	"message":   "line1\nline2\ttab ä€😀",
	"severity":  "error",
	"timestamp": int64(1700000000),
	"fields":    map[string]any{"type": "vzdump", "hostname": "pve1", "": "empty"},
	"secrets":   map[string]any{"token": "s3cr3t"},
	"list":      []any{int64(1), 2.5, "x", nil, true, []any{}, map[string]any{}},
}

// FuzzParse feeds arbitrary templates to Parse and, when they parse,
// renders them: neither may panic, and rendering must be deterministic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "plain", "{{title}}", "{{{title}}}", "{{~ title ~}}", "{{url-encode title}}",
		"{{json fields}}", "{{escape message}}", `\{{x}} \\{{x}}`, "{{! c }}{{!-- c --}}",
		"{{#each fields}}{{@key}}={{this}}\n{{/each}}\n", "{{#if a}}x{{else if b}}y{{else}}z{{/if}}",
		"{{#each list as |v i|}}{{i}}{{v}}{{/each}}", "{{#with fields}}{{type}}{{/with}}",
		"{{lookup fields \"type\"}}", "{{json [1, {\"a\": 'b'}]}}", "{{../x}}{{@root.title}}{{@index}}",
		"{{eq (len list) 7}}", "{{#unless x}}{{^}}{{/unless}}", "{{&title}}", "{{a.[b c].d}}",
		"{{json 1E5}} {{json -0}} {{json 1.5E-3}}", "{{#if x includeZero=true}}{{/if}}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Line < 1 || e.Col < 1 {
				t.Fatalf("Parse error %v (%T) has no position", err, err)
			}
			return
		}
		out1, err1 := tpl.Render(fuzzData)
		out2, err2 := tpl.Render(fuzzData)
		if out1 != out2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("rendering is not deterministic")
		}
		if _, err := tpl.RenderOptions(fuzzData, RenderOptions{Escape: strings.ToUpper}); (err == nil) != (err1 == nil) {
			t.Fatalf("escaping changed success: %v vs %v", err, err1)
		}
	})
}

// FuzzHelpers checks that url-encode, json and escape are reversible: what
// they produce decodes back to the input (for valid UTF-8, which is all a
// Rust string can hold).
func FuzzHelpers(f *testing.F) {
	for _, s := range []string{"", "a b/ä", "\x00\x1f\x7f", "\"\\<>&\u2028", "😀\r\n\t\b\f", "%41"} {
		f.Add(s)
	}
	tpl, err := Parse("{{url-encode s}}\x00{{json s}}\x00{{escape s}}")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := tpl.Render(map[string]any{"s": s})
		if err != nil {
			t.Fatal(err)
		}
		// None of the helpers may emit a raw NUL (it is %00 or \u0000), so
		// the separators split the output exactly.
		parts := strings.Split(out, "\x00")
		if len(parts) != 3 {
			t.Fatalf("a helper wrote a raw NUL: %q", out)
		}
		enc, js, esc := parts[0], parts[1], parts[2]
		if dec, err := url.PathUnescape(enc); err != nil || dec != s {
			t.Errorf("url-encode %q = %q, decodes to %q (%v)", s, enc, dec, err)
		}
		if !utf8.ValidString(s) {
			return
		}
		var got string
		if err := json.Unmarshal([]byte(js), &got); err != nil || got != s {
			t.Errorf("json %q = %s, decodes to %q (%v)", s, js, got, err)
		}
		if js != `"`+esc+`"` {
			t.Errorf("escape %q = %q, want json without quotes %q", s, esc, js)
		}
	})
}
