package handlebars

import "strings"

// URLEncode returns what the url-encode helper writes for s.
func URLEncode(s string) string {
	v, _ := urlEncodeHelper([]any{s}, nil)
	out, _ := v.(string)
	return out
}

// JSONEscape returns what the escape helper writes for s: the inside of
// the JSON string the json helper writes for it.
func JSONEscape(s string) string {
	var b strings.Builder
	appendEscaped(&b, s)
	return b.String()
}
