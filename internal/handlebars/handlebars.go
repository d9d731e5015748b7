// Package handlebars holds the subset of Handlebars that Proxmox-compatible
// templates need, with the semantics of handlebars-rust 5 as proxmox-notify
// uses it (webhook URL, header and body templates; later the title/body
// templates): paths, helpers with arguments, block helpers, whitespace
// control, standalone-line stripping, comments and `\{{` escapes.
//
// Behaviour that templates can observe follows handlebars-rust 5, read from
// its source (src/template.rs, src/grammar.pest, src/json/value.rs,
// src/helpers/):
//
//   - Non-strict: a missing property renders as the empty string.
//   - `{{x}}` and `{{{x}}}` render the same unless RenderOptions.Escape is
//     set (proxmox-notify's webhook disables escaping).
//   - Strings render raw, numbers as serde_json prints them (integers as
//     digits, floats in ryu's shortest form such as 1.0 or 1e21), booleans
//     as true/false, null as "", arrays as "[a, b]", objects as "[object]".
//   - `{{~` and `~}}` strip Unicode whitespace next to the tag.
//   - A block tag (`{{#x}}`, `{{else}}`, `{{/x}}`) or comment alone on its
//     line removes that line, but only when a line break follows the tag:
//     unlike handlebars.js, a tag at the very end of the template is not
//     standalone (handlebars-rust 5; 6.x changed this).
//   - `\{{` renders `{{` literally; a run of backslashes before `{{` loses
//     one backslash and the tag stays live.
//   - Built-in helpers: if, unless, each, with, lookup, eq, ne, gt, gte, lt,
//     lte, and, or, not, len, and proxmox-notify's url-encode, json and
//     escape.
//
// Deliberate differences, all supersets: `{{else if …}}` chains; gt/lt and
// friends compare floats and strings too; and/or take any number of
// arguments. Partials, decorators, inline partials and raw blocks are not
// supported and are parse errors.
package handlebars

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits that keep a hostile or mistaken template from exhausting memory or
// the stack. They are far above anything a notification template needs.
const (
	maxDepth  = 100      // nesting of blocks, subexpressions and literals
	maxOutput = 16 << 20 // bytes one Render may produce
)

// Error is a parse or render error with the position (1-based line and
// column, counted in characters) of the tag that caused it.
type Error struct {
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// position converts a byte offset in src into a 1-based line and column.
func position(src string, off int) (line, col int) {
	if off > len(src) {
		off = len(src)
	}
	before := src[:off]
	line = strings.Count(before, "\n") + 1
	if i := strings.LastIndexByte(before, '\n'); i >= 0 {
		before = before[i+1:]
	}
	return line, utf8.RuneCountInString(before) + 1
}

func errAt(src string, off int, format string, args ...any) *Error {
	l, c := position(src, off)
	return &Error{Line: l, Col: c, Msg: fmt.Sprintf(format, args...)}
}

// Template is a parsed template. It is immutable and safe for concurrent
// use.
type Template struct {
	src   string
	nodes []node
}

// Source returns the text the template was parsed from.
func (t *Template) Source() string { return t.src }

// Func is a helper supplied by the caller through RenderOptions.Funcs. It
// receives the evaluated positional arguments and hash arguments (values
// are nil, bool, string, int64, uint64, float64, []any or map[string]any)
// and returns a value that is rendered like data. A Raw result is written
// without escaping.
type Func func(args []any, hash map[string]any) (any, error)

// Raw is a helper result that RenderOptions.Escape must not touch.
type Raw string

// RenderOptions adjust one rendering.
type RenderOptions struct {
	// Funcs are extra helpers; a name here hides a built-in helper other
	// than the block helpers if, unless, each and with.
	Funcs map[string]Func
	// Escape, when set, is applied to the output of `{{x}}` (not of
	// `{{{x}}}` nor of url-encode, json, escape or Raw results), as
	// handlebars-rust's escape function is. Nil means no escaping, which is
	// what proxmox-notify's webhook uses.
	Escape func(string) string
}

// Render renders the template with data, which may be nil, a bool, a
// string, any integer or float type, json.Number, map[string]any,
// map[string]string, []any or []string, nested.
func (t *Template) Render(data any) (string, error) {
	return t.RenderOptions(data, RenderOptions{})
}

// RenderOptions renders the template with data and options.
func (t *Template) RenderOptions(data any, opt RenderOptions) (string, error) {
	root, err := normalize(data, 0)
	if err != nil {
		return "", err
	}
	r := &renderer{src: t.src, opt: opt, root: root}
	r.frames = []frame{{ctx: root}}
	if err := r.nodes(t.nodes); err != nil {
		return "", err
	}
	return r.out.String(), nil
}
