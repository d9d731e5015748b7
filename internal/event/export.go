package event

import "strings"

// ExportPrefix starts the name of every event field outside herald: in the
// journal and in the exec target's environment.
const ExportPrefix = "HERALD_FIELD_"

// maxExportName is journald's limit on a field name (JOURNAL_FIELD_NAME_MAX);
// journald drops fields with longer names.
const maxExportName = 64

// ExportName returns the name an event field has outside herald — the
// journal field and the exec target's environment variable:
// ExportPrefix followed by name upper-cased, with every character outside
// [A-Z0-9_] replaced by '_', cut to 64 characters in all. The result is always
// a valid journal field name: it starts with a letter (the prefix), so a field
// name that itself starts with '_' or a digit is safe.
//
// Different names can map to the same journal name ("a-b" and "a_b"); the
// journal keeps both values under that name. The journal and exec targets
// both use it, so a script and `journalctl HERALD_FIELD_X=...` agree on the
// names.
func ExportName(name string) string {
	var b strings.Builder
	b.Grow(len(ExportPrefix) + len(name))
	b.WriteString(ExportPrefix)
	// Ranging over the string yields one rune per character (one
	// utf8.RuneError per invalid byte), so "é" becomes one '_', not two.
	for _, r := range name {
		if b.Len() >= maxExportName {
			break
		}
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteByte(byte(r - 'a' + 'A'))
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteByte(byte(r))
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
