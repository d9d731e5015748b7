package journal

import (
	"encoding/binary"
	"strings"
)

// maxNameLen is journald's limit on a field name (JOURNAL_FIELD_NAME_MAX);
// journald drops fields with longer names. event.ExportName keeps to it.
const maxNameLen = 64

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
