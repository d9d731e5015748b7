package mailhdr

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestStripBcc(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "To: a\nBcc: b\nSubject: s\n\nbody\n", "To: a\nSubject: s\n\nbody\n"},
		{"folded", "Bcc: a,\n b,\n\tc\nX: y\r\n\r\nBcc: in body\n", "X: y\r\n\r\nBcc: in body\n"},
		{"case and obsolete space", "BCC : x\nbcc:y\nFrom: f\n\n", "From: f\n\n"},
		{"header ends at a non-field line", "To: a\nnot a field\nBcc: stays\n", "To: a\nnot a field\nBcc: stays\n"},
		{"no body", "Bcc: a\nTo: b\n", "To: b\n"},
		{"long field", "Bcc: " + strings.Repeat("x", 200<<10) + "\nTo: b\n\n", "To: b\n\n"},
		{"long kept field", "X: " + strings.Repeat("y", 200<<10) + "\nBcc: z\n\n", "X: " + strings.Repeat("y", 200<<10) + "\n\n"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				out, err := io.ReadAll(StripBcc(r))
				if err != nil || string(out) != tc.want {
					t.Fatalf("got %.80q (%v), want %.80q", out, err, tc.want)
				}
			}
		})
	}
	// Resumed inside a Bcc field: its continuation goes too.
	out, _ := io.ReadAll(Resume(strings.NewReader(" more@x\nTo: a\n\n"), true))
	if string(out) != "To: a\n\n" {
		t.Fatalf("resume: %q", out)
	}
}

// A read error of the source reaches the caller unchanged.
func TestStripBccPassesErrors(t *testing.T) {
	boom := errors.New("boom")
	_, err := io.ReadAll(StripBcc(io.MultiReader(strings.NewReader("To: a\n"), iotest.ErrReader(boom))))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}
