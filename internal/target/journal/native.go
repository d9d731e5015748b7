package journal

import (
	"encoding/binary"
	"strings"
)

// FieldPrefix starts the name of every event field in the journal (and in
// the exec target's environment).
const FieldPrefix = "HERALD_FIELD_"

// maxNameLen is journald's limit on a field name (JOURNAL_FIELD_NAME_MAX);
// journald drops fields with longer names.
const maxNameLen = 64

// FieldName returns the journal field name for the event field name:
// FieldPrefix followed by name upper-cased, with every character outside
// [A-Z0-9_] replaced by '_', cut to 64 characters in all. The result is always
// a valid journal field name: it starts with a letter (the prefix), so a field
// name that itself starts with '_' or a digit is safe.
//
// Different names can map to the same journal name ("a-b" and "a_b"); the
// journal keeps both values under that name. The exec target uses the same
// function for its environment, so a script and `journalctl HERALD_FIELD_X=...`
// agree on the names.
func FieldName(name string) string {
	var b strings.Builder
	b.Grow(len(FieldPrefix) + len(name))
	b.WriteString(FieldPrefix)
	// Ranging over the string yields one rune per character (one
	// utf8.RuneError per invalid byte), so "é" becomes one '_', not two.
	for _, r := range name {
		if b.Len() >= maxNameLen {
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

// validName reports whether journald accepts name as a field name set by a
// client: 1 to 64 characters from [A-Z0-9_], not starting with '_' (reserved
// for trusted fields) or a digit.
func validName(name string) bool {
	if name == "" || len(name) > maxNameLen || name[0] == '_' || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// field is one NAME=value pair of a journal entry. Names may repeat.
type field struct {
	Name, Value string
}

// appendField appends one field in the native protocol's form: NAME=value\n
// when the value has no newline, else the binary-safe form NAME\n, the value's
// length as a 64-bit little-endian integer, the value, \n. The name must be
// valid (callers build names from constants and FieldName).
func appendField(b []byte, name, value string) []byte {
	if !strings.Contains(value, "\n") {
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, name...)
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// encode returns the native-protocol serialisation of fields.
func encode(fields []field) []byte {
	n := 0
	for _, f := range fields {
		n += len(f.Name) + len(f.Value) + 10
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = appendField(b, f.Name, f.Value)
	}
	return b
}
