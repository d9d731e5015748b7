package handlebars

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func render(t *testing.T, tpl string, data any) string {
	t.Helper()
	tt, err := Parse(tpl)
	if err != nil {
		t.Fatalf("Parse(%q): %v", tpl, err)
	}
	out, err := tt.Render(data)
	if err != nil {
		t.Fatalf("Render(%q): %v", tpl, err)
	}
	return out
}

// jsonData decodes a JSON document the way a caller would hand data in.
func jsonData(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestProxmoxWebhookExample is proxmox-notify's own test_build_request
// (src/endpoints/webhook.rs), byte for byte.
func TestProxmoxWebhookExample(t *testing.T) {
	data := map[string]any{
		"title":     "t",
		"message":   "m",
		"severity":  "info",
		"timestamp": int64(1700000000),
		"fields":    map[string]string{"hello": "hello world", "test": "escaped\nstring"},
		"secrets":   map[string]string{},
	}
	body := "\n{{ fields.test }}\n{{ escape fields.test }}\n\n{{ json fields }}\n{{ json fields.hello }}\n\n{{ url-encode fields.hello }}\n\n{{ json severity }}\n\n"
	want := "\nescaped\nstring\nescaped\\nstring\n\n{\"hello\":\"hello world\",\"test\":\"escaped\\nstring\"}\n\"hello world\"\n\nhello%20world\n\n\"info\"\n\n"
	if got := render(t, body, data); got != want {
		t.Errorf("body:\n got %q\nwant %q", got, want)
	}
	if got := render(t, "http://localhost/{{ url-encode fields.hello }}", data); got != "http://localhost/hello%20world" {
		t.Errorf("url = %q", got)
	}
	if got := render(t, "{{ severity }}", data); got != "info" {
		t.Errorf("header = %q", got)
	}
	if got := render(t, "{{timestamp}} {{json timestamp}}", data); got != "1700000000 1700000000" {
		t.Errorf("timestamp = %q", got)
	}
}

func TestHelpers(t *testing.T) {
	data := map[string]any{
		"s":       "a b/ä",
		"special": ":/?#[]@!$&'()*+,;=% ",
		"kept":    "AZaz09-._~\"<>\\^`{|}",
		"ctl":     "\x00\x1f\x7f\t",
		"msg":     "he said \"hi\"\n\ttab\\ / <b>&é€😀\u2028\r\b\f\x01\x1f\x7f",
		"obj":     map[string]any{"b": int64(1), "a": []any{true, nil, "x<&>"}, "": "empty"},
		"num":     3.0,
		"n":       int64(-42),
		"big":     uint64(math.MaxUint64),
		"badutf8": "a\xffb",
	}
	tests := []struct{ tpl, want string }{
		{`{{url-encode s}}`, "a%20b%2F%C3%A4"},
		{`{{url-encode special}}`, "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%25%20"},
		{`{{url-encode kept}}`, "AZaz09-._~\"<>\\^`{|}"},
		{`{{url-encode ctl}}`, "%00%1F%7F%09"},
		{`{{url-encode "x y"}}`, "x%20y"},
		{`{{url-encode 'it\'s' "ignored"}}`, "it%27s"},
		{`{{url-encode badutf8}}`, "a%FFb"},
		{`{{escape msg}}`, `he said \"hi\"\n\ttab\\ / <b>&é€😀` + "\u2028" + `\r\b\f\u0001\u001f` + "\x7f"},
		{`{{escape "q\"q"}}`, `q\"q`},
		{`{{escape badutf8}}`, "a\uFFFDb"},
		{`{{json obj}}`, `{"":"empty","a":[true,null,"x<&>"],"b":1}`},
		{`{{json msg}}`, `"he said \"hi\"\n\ttab\\ / <b>&é€😀` + "\u2028" + `\r\b\f\u0001\u001f` + "\x7f\""},
		{`{{json num}}`, "3.0"},
		{`{{json n}}`, "-42"},
		{`{{json big}}`, "18446744073709551615"},
		{`{{json missing}}`, "null"},
		{`{{json obj.a}}`, `[true,null,"x<&>"]`},
		{`{{json "lit"}}`, `"lit"`},
		{`{{json 1.50}}`, "1.5"},
		{`{{json [1, "a", {"k": null}]}}`, `[1,"a",{"k":null}]`},
		{`{{lookup obj "b"}}`, "1"},
		{`{{lookup obj.a 2}}`, "x<&>"},
		{`{{lookup obj.a "2"}}`, ""},
		{`{{eq n -42}} {{eq n -42.0}} {{ne "a" "b"}} {{eq obj.a obj.a}}`, "true false true true"},
		{`{{gt 3 2}} {{gte 2 2}} {{lt "a" "b"}} {{lte 2.5 2}}`, "true true true false"},
		{`{{and 1 "x" true}} {{and 1 0}} {{or null 0 "x"}} {{or null false}} {{not ""}}`, "true false true false true"},
		{`{{len obj}} {{len obj.a}} {{len s}} {{len n}}`, "3 3 6 0"},
		{`{{escape (json obj.a)}}`, `[true,null,\"x<&>\"]`},
		{`{{url-encode (lookup obj "")}}`, "empty"},
		{`{{#if (eq n -42)}}yes{{else}}no{{/if}}`, "yes"},
		{`{{#eq 1 2}}yes{{else}}no{{/eq}}`, "no"},
		{`{{#json obj.b}}ignored body{{/json}}`, "1"},
	}
	for _, tc := range tests {
		if got := render(t, tc.tpl, data); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.tpl, got, tc.want)
		}
	}
}

func TestHelperErrors(t *testing.T) {
	data := map[string]any{"n": int64(1), "m": map[string]any{}}
	tests := []struct{ tpl, want string }{
		{`{{url-encode n}}`, "url-encode: missing parameter"},
		{`{{url-encode missing}}`, "url-encode: missing parameter"},
		{`{{escape m}}`, "escape: missing text parameter"},
		{`{{json}}`, "json: missing parameter"},
		{`{{url-encode}}`, "url-encode: missing parameter"},
		{`{{nosuch n}}`, `helper not found: "nosuch"`},
		{`{{#nosuch n}}{{/nosuch}}`, `helper not found: "nosuch"`},
		{`{{#if}}x{{/if}}`, `param not found for helper "if"`},
		{`{{#each n}}x{{/each}}`, "each: a number is not iterable"},
		{`{{gt "a" 1}}`, "gt: cannot compare a string with a number"},
	}
	for _, tc := range tests {
		tt, err := Parse(tc.tpl)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.tpl, err)
		}
		_, err = tt.Render(data)
		var he *Error
		if !errors.As(err, &he) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want *Error containing %q", tc.tpl, err, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	data := map[string]any{
		"title": "Backup <ok>",
		"n":     int64(0),
		"f":     0.5,
		"t":     true,
		"empty": "",
		"list":  []any{int64(1), int64(2), int64(3)},
		"none":  []any{},
		"obj":   map[string]any{"http": int64(80), "ftp": int64(21)},
		"nest":  map[string]any{"a": map[string]any{"b": "deep"}, "odd key": "odd", "0": "zero"},
		"arr":   []any{map[string]any{"d": int64(100)}, map[string]any{"d": int64(200)}},
		"x":     int64(99),
		"null":  nil,
	}
	tests := []struct{ name, tpl, want string }{
		{"plain", "hello", "hello"},
		{"path", "{{title}}", "Backup <ok>"},
		{"no escaping", "{{title}}|{{{title}}}|{{&title}}", "Backup <ok>|Backup <ok>|Backup <ok>"},
		{"spaces inside", "{{  title  }}|{{{ title }}}", "Backup <ok>|Backup <ok>"},
		{"dotted", "{{nest.a.b}} {{nest/a/b}} {{nest.[odd key]}} {{nest.[0]}} {{nest.0}}", "deep deep odd zero zero"},
		{"this", "{{this.title}} {{./title}}", "Backup <ok> Backup <ok>"},
		{"missing", "[{{nope}}][{{nest.nope.deeper}}][{{title.x}}][{{null}}]", "[][][][]"},
		{"numbers", "{{n}} {{f}} {{x}}", "0 0.5 99"},
		{"bools", "{{t}}", "true"},
		{"array render", "{{list}} {{none}}", "[1, 2, 3] []"},
		{"object render", "{{obj}}", "[object]"},
		{"array index", "{{list.[1]}} {{list.2}} {{list.9}}", "2 3 "},
		{"if true", "{{#if t}}yes{{/if}}", "yes"},
		{"if else", "{{#if empty}}yes{{else}}no{{/if}}", "no"},
		{"if caret", "{{#if empty}}yes{{^}}no{{/if}}", "no"},
		{"if zero", "{{#if n}}yes{{else}}no{{/if}} {{#if n includeZero=true}}yes{{else}}no{{/if}}", "no yes"},
		{"if empty list", "{{#if none}}yes{{else}}no{{/if}}{{#if obj}}Y{{/if}}", "noY"},
		{"unless", "{{#unless t}}yes{{else}}no{{/unless}}", "no"},
		{"else if chain", "{{#if empty}}A{{else if n}}B{{else if t}}C{{else}}D{{/if}}", "C"},
		{"else if fallback", "{{#if empty}}A{{else if n}}B{{else}}D{{/if}}", "D"},
		{"each array", "{{#each list}}{{@first}}|{{@last}}|{{@index}}:{{this}}|{{/each}}",
			"true|false|0:1|false|false|1:2|false|true|2:3|"},
		{"each object sorted", "{{#each obj}}{{@first}}|{{@key}}:{{this}}|{{/each}}", "true|ftp:21|false|http:80|"},
		{"each parent", "{{#each arr}} d={{d}} x={{../x}} {{/each}}", " d=100 x=99  d=200 x=99 "},
		{"each else", "{{#each none}}1{{else}}empty{{/each}}{{#each nope}}1{{else}}E{{/each}}", "emptyE"},
		{"each block params", "{{#each list as |i|}}{{i}}{{/each}}", "123"},
		{"each object block params", "{{#each obj as |v k|}}{{k}}:{{v}}|{{/each}}", "ftp:21|http:80|"},
		{"each index param", "{{#each list as |v i|}}{{i}}={{v}};{{/each}}", "0=1;1=2;2=3;"},
		{"nested each up", "{{#each arr}}{{#each ../list}}{{this}}{{../d}}{{/each}};{{/each}}", "110021003100;120022003200;"},
		{"if inside each keeps level", "{{#each arr}}{{#if d}}{{../x}}{{/if}}{{/each}}", "9999"},
		{"local up", "{{#each arr}}{{#each ../list}}{{@../index}}{{@index}} {{/each}}{{/each}}", "00 01 02 10 11 12 "},
		{"root", "{{#each arr}}{{@root.title}}{{/each}}", "Backup <ok>Backup <ok>"},
		{"with", "{{#with nest.a}}{{b}}{{/with}}{{#with nope}}x{{else}}none{{/with}}", "deepnone"},
		{"with as", "{{#with nest.a as |q|}}{{q.b}}{{/with}}", "deep"},
		{"comment", "a{{! note }}b{{!-- has }} inside --}}c", "abc"},
		{"escaped tag", `\{{title}} {{title}}`, "{{title}} Backup <ok>"},
		{"escaped quad", `\{{{{raw}}}}`, "{{{{raw}}}}"},
		{"string literal", `{{#if "x"}}lit{{/if}}`, "lit"},
		{"subexpression name", "{{(lookup nest \"odd key\")}}", "odd"},
		{"tilde", "a  {{~ title ~}}  b", "aBackup <ok>b"},
		{"tilde triple", "a  {{{~ title ~}}}  b|a {{~{title}~}} b", "aBackup <ok>b|aBackup <ok>b"},
		{"tilde block", "{{#if t~}}  yes  {{~/if}}", "yes"},
		{"tilde else", "{{#if empty}}a{{~ else ~}}\n  b{{/if}}", "b"},
		{"unicode tilde", "a\u00a0\u3000{{~title}}", "aBackup <ok>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(t, tc.tpl, data); got != tc.want {
				t.Errorf("%s:\n got %q\nwant %q", tc.tpl, got, tc.want)
			}
		})
	}
}

// TestHandlebarsRustVectors are test cases from handlebars-rust's own test
// suite (tests/escape.rs, tests/strip-empty-lines.rs, tests/whitespace.rs,
// src/helpers/helper_each.rs), with the outputs it asserts.
func TestHandlebarsRustVectors(t *testing.T) {
	foobar := map[string]any{"FOO": "foo", "BAR": "bar"}
	tests := []struct {
		name string
		tpl  string
		data any
		want string
	}{
		{"escape_216",
			`\\\\ {{FOO}} {{BAR}} {{FOO}}{{BAR}} {{FOO}}#{{BAR}} {{FOO}}//{{BAR}} {{FOO}}\\{{FOO}} {{FOO}}\\\\{{FOO}}\\\{{FOO}} \\\{{FOO}} \{{FOO}} \{{FOO}}`,
			foobar,
			`\\\\ foo bar foobar foo#bar foo//bar foo\foo foo\\\foo\\foo \\foo {{FOO}} {{FOO}}`},
		{"stripping_empty_line_258", "hello\n{{#if FOO}}\n  {{BAR}}\n{{/if}}\n", foobar, "hello\n  bar\n"},
		{"whitespaces_elision", "  {{~ FOO ~}}  ", foobar, "foo"},
		// #611: in handlebars-rust 5 a closing tag followed by non-newline
		// text is not standalone.
		{"tag_before_text_611",
			"<ul>\n  {{#each a}}\n    {{!-- comment --}}\n    <li>{{this}}</li>\n  {{/each}}abc",
			map[string]any{"a": []any{int64(1), int64(2), int64(3)}},
			"<ul>\n    <li>1</li>\n      <li>2</li>\n      <li>3</li>\n  abc"},
		// …nor is one at the very end of the template (fixed only in 6.x).
		{"tag_before_eof_v5",
			"<ul>\n  {{#each a}}\n    <li>{{this}}</li>\n  {{/each}}",
			map[string]any{"a": []any{int64(1), int64(2)}},
			"<ul>\n    <li>1</li>\n      <li>2</li>\n  "},
		{"else_if_tilde_766", "{{#if x}}\nA\n   {{~else if y}}\nB\n{{/if}}",
			map[string]any{"x": false, "y": true}, "B\n"},
		{"else_if_trailing_tilde_766", "{{#if x}}\nA\n{{else if y ~}}   \nB\n{{/if}}",
			map[string]any{"x": false, "y": true}, "B\n"},
		{"else_if_fallback_766", "{{#if x}}\nA\n   {{~else if y}}\nB\n{{else}}\nC\n{{/if}}",
			map[string]any{"x": false, "y": false}, "C\n"},
		{"each_empty_key", "{{#each this}}{{@key}}-{{value}}\n{{/each}}",
			map[string]any{"foo": map[string]any{"value": "bar"}, "": map[string]any{"value": "baz"}},
			"-baz\nfoo-bar\n"},
		{"nested_array", "{{#each this.[0]}}{{this}}{{/each}}", []any{[]any{int64(1), int64(2), int64(3)}}, "123"},
		{"nested_each_path_ups", "{{#each a.b}}{{#each c}}{{../../d}}{{/each}}{{/each}}",
			map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": []any{int64(1)}}}}, "d": int64(1)}, "1"},
		{"nested_each_with_path_up_this",
			"{{#each variant}}{{#each ../typearg}}{{#if @first}}template<{{/if}}{{this}}{{#if @last}}>{{else}},{{/if}}{{/each}}{{/each}}",
			map[string]any{"typearg": []any{"T"}, "variant": []any{"1", "2"}}, "template<T>template<T>"},
		{"white_space_omitter", "hello~     {{~world~}} \n  !{{~#if true}}else{{/if~}}",
			map[string]any{"world": "W"}, "hello~W!else"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(t, tc.tpl, tc.data); got != tc.want {
				t.Errorf("%s:\n got %q\nwant %q", tc.tpl, got, tc.want)
			}
		})
	}
}

// TestStandalone covers the line-stripping rule: block tags and comments
// alone on a line vanish with their line, expressions never do.
func TestStandalone(t *testing.T) {
	data := map[string]any{"fields": map[string]any{"b": "2", "a": "1"}, "yes": true}
	tests := []struct{ name, tpl, want string }{
		{"each lines", "{{#each fields}}\n{{@key}}={{this}}\n{{/each}}\n", "a=1\nb=2\n"},
		{"indented", "x\n  {{#if yes}}\n  y\n  {{/if}}\nz", "x\n  y\nz"},
		{"crlf", "x\r\n{{#if yes}}\r\ny\r\n{{/if}}\r\nz", "x\r\ny\r\nz"},
		{"comment line", "a\n  {{! gone }}\nb", "a\nb"},
		{"expression not standalone", "a\n{{yes}}\nb", "a\ntrue\nb"},
		{"not alone", "a {{#if yes}}\nb\n{{/if}} c", "a \nb\n c"},
		{"else line", "{{#if no}}\nA\n{{else}}\nB\n{{/if}}\n", "B\n"},
		{"first line", "{{#if yes}}\nfirst\n{{/if}}\n", "first\n"},
		{"at eof not standalone", "{{#if yes}}\nx\n{{/if}}", "x\n"},
		{"tilde gap keeps pending strip", "{{#if yes~}}\n{{fields.a}}\nfoo{{/if}}", "1foo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(t, tc.tpl, data); got != tc.want {
				t.Errorf("%q:\n got %q\nwant %q", tc.tpl, got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		tpl       string
		line, col int
		msg       string
	}{
		{"{{title", 1, 8, "expected }}"},
		{"a\n  {{#if x}}b", 2, 3, "never closed"},
		{"{{#if x}}{{/each}}", 1, 10, "does not match"},
		{"{{/if}}", 1, 1, "closes nothing"},
		{"x{{else}}", 1, 2, "outside a block"},
		{"{{#if a}}{{else}}{{else}}{{/if}}", 1, 18, "second {{else}}"},
		{"{{! open", 1, 1, "comment is never closed"},
		{"{{> partial}}", 1, 1, "not supported"},
		{"{{#*inline \"x\"}}{{/inline}}", 1, 1, "not supported"},
		{"{{json 1.}}", 1, 8, "invalid literal"},
		{"{{json 01}}", 1, 8, "invalid literal"},
		{"{{json [,1]}}", 1, 8, "invalid literal"},
		{"{{json 'a' 'b}}", 1, 12, "expected }}"},
		{"{{a.}}", 1, 4, "expected }}"},
		{"{{}}", 1, 3, "expected a name"},
		{"{{#}}{{/}}", 1, 4, "expected a helper name"},
		{"é\n{{{x}}", 2, 6, "expected }}}"},
		{"{{x (y}}", 1, 5, "subexpression is never closed"},
		{"{{#each x as |}}{{/each}}", 1, 15, "block parameters"},
	}
	for _, tc := range tests {
		_, err := Parse(tc.tpl)
		var he *Error
		if !errors.As(err, &he) {
			t.Errorf("Parse(%q) = %v, want *Error", tc.tpl, err)
			continue
		}
		if he.Line != tc.line || he.Col != tc.col || !strings.Contains(he.Msg, tc.msg) {
			t.Errorf("Parse(%q) = %v, want line %d col %d containing %q", tc.tpl, err, tc.line, tc.col, tc.msg)
		}
	}
}

func TestNestingLimit(t *testing.T) {
	deep := strings.Repeat("{{#if x}}", maxDepth+1) + strings.Repeat("{{/if}}", maxDepth+1)
	if _, err := Parse(deep); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep blocks: %v", err)
	}
	ok := strings.Repeat("{{#if x}}", maxDepth) + "in" + strings.Repeat("{{/if}}", maxDepth)
	if got := render(t, ok, map[string]any{"x": true}); got != "in" {
		t.Errorf("nested ifs = %q", got)
	}
	sub := "{{json " + strings.Repeat("(not ", maxDepth+1) + "x" + strings.Repeat(")", maxDepth+1) + "}}"
	if _, err := Parse(sub); err == nil {
		t.Error("deep subexpressions parsed")
	}
	lit := "{{json " + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + "}}"
	if _, err := Parse(lit); err == nil {
		t.Error("deep literal parsed")
	}
}

func TestOutputLimit(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	list := make([]any, 20)
	for i := range list {
		list[i] = int64(i)
	}
	tpl, err := Parse("{{#each l}}{{../b}}{{/each}}")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tpl.Render(map[string]any{"l": list, "b": big})
	if err == nil || !strings.Contains(err.Error(), "output larger") {
		t.Errorf("err = %v, want output limit", err)
	}
}

func TestFloatFormat(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{1, "1.0"}, {0.1, "0.1"}, {-0.5, "-0.5"}, {100, "100.0"}, {123.456, "123.456"},
		{1e15, "1000000000000000.0"}, {1e16, "1e16"}, {1e21, "1e21"}, {1.5e300, "1.5e300"},
		{1.5e-7, "1.5e-7"}, {0.0001, "0.0001"}, {0.00001, "0.00001"}, {0.000001, "1e-6"}, {0.001234, "0.001234"},
		{123456789012345680, "1.2345678901234568e17"}, {math.Copysign(0, -1), "-0.0"}, {0, "0.0"},
		{5e-324, "5e-324"}, {math.MaxFloat64, "1.7976931348623157e308"},
	}
	for _, tc := range tests {
		if got := formatFloat(tc.f); got != tc.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestData(t *testing.T) {
	// JSON decoded with UseNumber keeps integers integral.
	d := jsonData(t, `{"ts": 1700000000, "f": 2.5, "list": ["a", 1], "big": 18446744073709551615}`)
	if got := render(t, "{{ts}} {{f}} {{list}} {{big}} {{json this}}", d); got !=
		`1700000000 2.5 [a, 1] 18446744073709551615 {"big":18446744073709551615,"f":2.5,"list":["a",1],"ts":1700000000}` {
		t.Errorf("got %q", got)
	}
	// Plain Go types.
	d2 := map[string]any{"i": 7, "u": uint8(8), "f32": float32(0.5), "ss": []string{"x", "y"},
		"nan": math.NaN(), "raw": Raw("<r>")}
	if got := render(t, "{{i}} {{u}} {{f32}} {{ss}} [{{nan}}] {{raw}}", d2); got != "7 8 0.5 [x, y] [] <r>" {
		t.Errorf("got %q", got)
	}
	tpl, _ := Parse("x")
	if _, err := tpl.Render(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("channel accepted as data")
	}
	cyc := map[string]any{}
	cyc["self"] = cyc
	if _, err := tpl.Render(cyc); err == nil {
		t.Error("cyclic data accepted")
	}
}

func TestRenderOptions(t *testing.T) {
	tpl, err := Parse(`{{t}}|{{{t}}}|{{json t}}|{{up t}}|{{safe}}|{{#big n}}B{{else}}S{{/big}}`)
	if err != nil {
		t.Fatal(err)
	}
	opt := RenderOptions{
		Escape: func(s string) string { return strings.ReplaceAll(s, "<", "&lt;") },
		Funcs: map[string]Func{
			"up":   func(a []any, _ map[string]any) (any, error) { return strings.ToUpper(a[0].(string)), nil },
			"safe": func([]any, map[string]any) (any, error) { return Raw("<b>"), nil },
			"big":  func(a []any, _ map[string]any) (any, error) { return a[0].(int64) > 10, nil },
		},
	}
	got, err := tpl.RenderOptions(map[string]any{"t": "<x>", "n": 11}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if want := `&lt;x>|<x>|"<x>"|&lt;X>|<b>|B`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	opt.Funcs["boom"] = func([]any, map[string]any) (any, error) { return nil, errors.New("boom") }
	tpl2, _ := Parse("\n  {{boom}}")
	if _, err := tpl2.RenderOptions(nil, opt); err == nil || err.Error() != "line 2, column 3: boom" {
		t.Errorf("err = %v", err)
	}
}

func TestConcurrentRender(t *testing.T) {
	tpl, err := Parse("{{#each l}}{{this}}{{/each}}")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 8)
	for range 8 {
		go func() {
			s, _ := tpl.Render(map[string]any{"l": []any{"a", "b"}})
			done <- s
		}()
	}
	for range 8 {
		if s := <-done; s != "ab" {
			t.Errorf("got %q", s)
		}
	}
}

// BenchmarkWebhookBody renders a Discord-style body with the data a
// webhook delivery builds.
func BenchmarkWebhookBody(b *testing.B) {
	tpl, err := Parse("{\"content\": \"``` {{ escape message }}```\", \"sev\": \"{{severity}}\", \"f\": {{json fields}}}")
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]any{
		"title": "vzdump backup status (pve1): backup failed", "message": strings.Repeat("line of log output\n", 50),
		"severity": "error", "timestamp": int64(1700000000),
		"fields":  map[string]string{"type": "vzdump", "hostname": "pve1", "job-id": "backup-1"},
		"secrets": map[string]string{"token": "x"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tpl.Render(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	src := "{{#each fields}}\n{{@key}}={{this}}\n{{/each}}\n{{#if (eq severity \"error\")}}{{url-encode title}}{{else}}{{json fields}}{{/if}}"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
