package handlebars

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Values inside the renderer form a JSON model like serde_json's Value:
// nil, bool, string, int64, uint64 (only above math.MaxInt64), float64
// (finite), []any and map[string]any. normalize converts caller data into
// it once, so the renderer never meets other types.

// normalize converts Go data into the value model.
func normalize(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("handlebars: data nested deeper than %d (or cyclic)", maxDepth)
	}
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint:
		return fromUint(uint64(x)), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		return fromUint(x), nil
	case float32:
		return fromFloat(float64(x)), nil
	case float64:
		return fromFloat(x), nil
	case json.Number:
		return parseNumber(string(x))
	case Raw:
		return string(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out, nil
	default:
		return nil, fmt.Errorf("handlebars: unsupported data type %T", v)
	}
}

func fromUint(u uint64) any {
	if u <= math.MaxInt64 {
		return int64(u)
	}
	return u
}

// fromFloat maps NaN and infinities to null, as serde_json's Value cannot
// hold them.
func fromFloat(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

// parseNumber reads a JSON number the way serde_json stores it: an
// integer as i64/u64 when it fits, anything else as f64.
func parseNumber(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("handlebars: number %q out of range", s)
	}
	return f, nil
}

// display renders a value as handlebars-rust's JsonRender does.
func display(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return formatFloat(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = display(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return "[object]"
	default:
		return fmt.Sprint(x)
	}
}

// truthy is handlebars-rust's JsonTruthy: numbers are true when normal
// (non-zero, non-subnormal), or, with includeZero, when not NaN.
func truthy(v any, includeZero bool) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case int64:
		return includeZero || x != 0
	case uint64:
		return true
	case float64:
		if includeZero {
			return !math.IsNaN(x)
		}
		return x != 0 && !math.IsInf(x, 0) && !math.IsNaN(x) && math.Abs(x) >= 0x1p-1022
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	default:
		return false
	}
}

// formatFloat prints a finite float64 as serde_json does (ryu's shortest
// round-trip digits): 1.0, 0.1, 123.456, 1e21, 1.5e-7, -0.0.
func formatFloat(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	// strconv gives the same shortest digits as ryu: "-d.ddde±XX".
	e := strconv.FormatFloat(f, 'e', -1, 64)
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	length := len(digits)
	k := exp - (length - 1) // value = digits × 10^k
	kk := length + k        // 10^(kk-1) <= value < 10^kk

	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case k >= 0 && kk <= 16:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", kk-length))
		b.WriteString(".0")
	case kk > 0 && kk <= 16:
		b.WriteString(digits[:kk])
		b.WriteByte('.')
		b.WriteString(digits[kk:])
	case kk > -5 && kk <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -kk))
		b.WriteString(digits)
	case length == 1:
		b.WriteString(digits)
		b.WriteByte('e')
		b.WriteString(strconv.Itoa(kk - 1))
	default:
		b.WriteString(digits[:1])
		b.WriteByte('.')
		b.WriteString(digits[1:])
		b.WriteByte('e')
		b.WriteString(strconv.Itoa(kk - 1))
	}
	return b.String()
}

// appendJSON writes v as serde_json::to_string does: compact, object keys
// sorted (serde_json without preserve_order), and only `"`, `\` and
// control characters escaped (no HTML escaping, unlike encoding/json).
func appendJSON(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int64, uint64, float64:
		b.WriteString(display(x))
	case string:
		b.WriteByte('"')
		appendEscaped(b, x)
		b.WriteByte('"')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			appendJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			appendEscaped(b, k)
			b.WriteString(`":`)
			appendJSON(b, x[k])
		}
		b.WriteByte('}')
	default:
		b.WriteString("null")
	}
}

const hexDigits = "0123456789abcdef"

// appendEscaped writes s as the inside of a serde_json string: `"` and `\`
// escaped, \b \t \n \f \r short, other controls below 0x20 as \u00xx with
// lower-case hex; DEL, '/', '<', '>', '&' and all non-ASCII as they are.
// Invalid UTF-8 (which a Rust string cannot hold) becomes U+FFFD so that
// the output stays valid JSON.
func appendEscaped(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteString("\uFFFD")
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
			continue
		}
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
		i++
	}
}

// equal is serde_json's Value equality: numbers are equal only within the
// same kind (integer or float), maps and arrays compare deeply.
func equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool, string, float64:
		return a == b
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case uint64:
			return false // y > MaxInt64 by construction
		}
		return false
	case uint64:
		y, ok := b.(uint64)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// compare orders two numbers (integers exactly, floats numerically), two
// strings (bytewise) or two booleans; ok is false for other pairs.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return strings.Compare(x, y), ok
	case bool:
		y, ok := b.(bool)
		if !ok {
			return 0, false
		}
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		}
		return 1, true
	}
	ai, aInt := a.(int64)
	bi, bInt := b.(int64)
	if aInt && bInt {
		switch {
		case ai < bi:
			return -1, true
		case ai > bi:
			return 1, true
		}
		return 0, true
	}
	af, ok1 := toFloat(a)
	bf, ok2 := toFloat(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case af < bf:
		return -1, true
	case af > bf:
		return 1, true
	}
	return 0, true
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
