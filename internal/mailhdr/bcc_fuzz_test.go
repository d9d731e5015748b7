package mailhdr

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// headerFields returns the header fields of msg as the filter sees them:
// lines up to the first empty line or the first line that is neither a
// field nor a continuation.
func headerFieldNames(msg []byte) []string {
	var names []string
	for _, line := range bytes.SplitAfter(msg, []byte("\n")) {
		if len(line) == 0 || string(line) == "\n" || string(line) == "\r\n" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, ok := FieldName(line)
		if !ok {
			break
		}
		names = append(names, strings.ToLower(name))
	}
	return names
}

// FuzzBccFilter: whatever a header block holds, the filter's output has no
// Bcc field, and everything after the header block passes unchanged; a
// resumed filter (inside a Bcc field) drops a leading continuation line too.
func FuzzBccFilter(f *testing.F) {
	for _, s := range []string{
		"To: a\nBcc: b\n c\nSubject: s\n\nBcc: body\n",
		"BCC:x\r\n\tmore\r\nX: y\r\n\r\nbody",
		"bcc : obsolete\nnot a header\nBcc: in body\n",
		"Bcc: a\n\n",
		" leading\nBcc: x\n",
		"",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, resume bool) {
		out, err := io.ReadAll(Resume(bytes.NewReader(in), resume))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range headerFieldNames(out) {
			if n == "bcc" {
				t.Fatalf("a Bcc field survived:\nin  %q\nout %q", in, out)
			}
		}
		if resume && len(in) > 0 && (in[0] == ' ' || in[0] == '\t') && len(out) > 0 && (out[0] == ' ' || out[0] == '\t') {
			t.Fatalf("the continuation of a Bcc field survived:\nin  %q\nout %q", in, out)
		}
		// The body (after the input's blank line) is unchanged.
		if i := bytes.Index(in, []byte("\n\n")); i >= 0 && !bytes.Contains(in[:i], []byte("\r")) {
			if !bytes.HasSuffix(out, in[i+2:]) {
				t.Fatalf("body changed:\nin  %q\nout %q", in, out)
			}
		}
	})
}
