package handlebars

import (
	"errors"
	"fmt"
	"strings"
)

// helperDef is a value-producing helper. raw marks helpers whose output
// handlebars-rust writes directly (never escaped, and a block body is
// ignored).
type helperDef struct {
	fn  func(args []any, hash map[string]any) (any, error)
	raw bool
}

// blockOnly are the helpers that only make sense as blocks; the renderer
// implements them itself.
var blockOnly = map[string]bool{"if": true, "unless": true, "each": true, "with": true}

var builtins map[string]helperDef

func init() {
	builtins = map[string]helperDef{
		// proxmox-notify's webhook helpers (src/endpoints/webhook.rs;
		// docs/proxmox-notify.md §2.5).
		"url-encode": {fn: urlEncodeHelper, raw: true},
		"json":       {fn: jsonHelper, raw: true},
		"escape":     {fn: escapeHelper, raw: true},
		// handlebars-rust's built-ins.
		"lookup": {fn: lookupHelper},
		"eq":     {fn: binary("eq", func(a, b any) (bool, error) { return equal(a, b), nil })},
		"ne":     {fn: binary("ne", func(a, b any) (bool, error) { return !equal(a, b), nil })},
		"gt":     {fn: ordered("gt", func(c int) bool { return c > 0 })},
		"gte":    {fn: ordered("gte", func(c int) bool { return c >= 0 })},
		"lt":     {fn: ordered("lt", func(c int) bool { return c < 0 })},
		"lte":    {fn: ordered("lte", func(c int) bool { return c <= 0 })},
		"and":    {fn: many("and", true)},
		"or":     {fn: many("or", false)},
		"not":    {fn: notHelper},
		"len":    {fn: lenHelper},
	}
}

// urlEncodeHelper percent-encodes (upper-case hex) the UTF-8 bytes of its
// string argument that proxmox-notify's FRAGMENT set names: controls
// 0x00–0x1F and 0x7F, all non-ASCII, space and : / ? # [ ] @ ! $ & ' ( ) *
// + , ; = %. Everything else (letters, digits, - . _ ~ " < > \ ^ ` { | })
// stays.
func urlEncodeHelper(args []any, _ map[string]any) (any, error) {
	s, ok := arg0String(args)
	if !ok {
		return nil, errors.New("url-encode: missing parameter")
	}
	const upper = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || strings.IndexByte(":/?#[]@!$&'()*+,;=% ", c) >= 0 {
			b.WriteByte('%')
			b.WriteByte(upper[c>>4])
			b.WriteByte(upper[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// jsonHelper is serde_json::to_string of its argument (null when the
// argument is missing).
func jsonHelper(args []any, _ map[string]any) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("json: missing parameter")
	}
	var b strings.Builder
	appendJSON(&b, args[0])
	return b.String(), nil
}

// escapeHelper is the JSON string form of its string argument without the
// quotes.
func escapeHelper(args []any, _ map[string]any) (any, error) {
	s, ok := arg0String(args)
	if !ok {
		return nil, errors.New("escape: missing text parameter")
	}
	var b strings.Builder
	appendEscaped(&b, s)
	return b.String(), nil
}

func arg0String(args []any) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	s, ok := args[0].(string)
	return s, ok
}

// lookupHelper is `lookup collection key`: an array element by number or
// an object member by string; anything else is null.
func lookupHelper(args []any, _ map[string]any) (any, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("param not found for helper %q", "lookup")
	}
	switch c := args[0].(type) {
	case []any:
		var i uint64
		switch k := args[1].(type) {
		case int64:
			if k < 0 {
				return nil, nil
			}
			i = uint64(k)
		case uint64:
			i = k
		default:
			return nil, nil
		}
		if i < uint64(len(c)) {
			return c[i], nil
		}
	case map[string]any:
		if k, ok := args[1].(string); ok {
			return c[k], nil
		}
	}
	return nil, nil
}

func binary(name string, op func(a, b any) (bool, error)) func([]any, map[string]any) (any, error) {
	return func(args []any, _ map[string]any) (any, error) {
		if len(args) < 2 {
			return nil, fmt.Errorf("param not found for helper %q", name)
		}
		return op(args[0], args[1])
	}
}

func ordered(name string, ok func(int) bool) func([]any, map[string]any) (any, error) {
	return binary(name, func(a, b any) (bool, error) {
		c, comparable := compare(a, b)
		if !comparable {
			return false, fmt.Errorf("%s: cannot compare %s with %s", name, typeName(a), typeName(b))
		}
		return ok(c), nil
	})
}

// many is and/or over any number (at least one) of arguments.
func many(name string, all bool) func([]any, map[string]any) (any, error) {
	return func(args []any, _ map[string]any) (any, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("param not found for helper %q", name)
		}
		for _, a := range args {
			if truthy(a, false) != all {
				return !all, nil
			}
		}
		return all, nil
	}
}

func notHelper(args []any, _ map[string]any) (any, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("param not found for helper %q", "not")
	}
	return !truthy(args[0], false), nil
}

// lenHelper is the length of an array or object, the byte length of a
// string (Rust's str::len), else 0.
func lenHelper(args []any, _ map[string]any) (any, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("param not found for helper %q", "len")
	}
	switch x := args[0].(type) {
	case []any:
		return int64(len(x)), nil
	case map[string]any:
		return int64(len(x)), nil
	case string:
		return int64(len(x)), nil
	}
	return int64(0), nil
}
