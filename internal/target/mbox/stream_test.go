package mbox

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"herald/internal/mailhdr"
)

// escaped runs one of the escaping writers into a buffer.
func escaped(t *testing.T, write func(w *bufio.Writer) error) []byte {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := write(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestStreamedEscapingMatches holds the streaming writer (large mails the
// queue mapped) to the in-memory one, byte for byte, on messages built to
// put line ends, '\r', From_ lines and runs of '>' across the buffer's
// edges, for several buffer sizes.
func TestStreamedEscapingMatches(t *testing.T) {
	fixed := []string{
		"", "\n", "\r", "\r\n", "x", "x\r", "x\r\n", "From x", "From \n", ">From x\r\n", ">>>>From y\n",
		"From me Mon Jan  1 00:00:00 2024\nSubject: s\n\nFrom here\n>From there\nFrom",
		"From me\nnot a header\n", "From me", "From me\n", "From me\nSubject: x",
		strings.Repeat(">", 40) + "From x\n", strings.Repeat(">", 40) + "x\n", strings.Repeat(">", 40),
		strings.Repeat("a", 37) + "\r\n" + strings.Repeat("b", 15) + "\r", "a\r\r\n\r\r",
	}
	alphabet := []string{">", "F", "From ", "\r", "\n", "\r\n", "x", "y ", "Subject: s\n", strings.Repeat("z", 20)}
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := fixed
	for range 3000 {
		var b strings.Builder
		if rng.IntN(4) == 0 {
			b.WriteString("From sender Mon Jan  1 00:00:00 2024\n")
		}
		for range rng.IntN(30) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		msgs = append(msgs, b.String())
	}
	saved := escapeBufSize
	defer func() { escapeBufSize = saved }()
	for _, size := range []int{16, 17, 23, 64, saved} {
		escapeBufSize = size
		for _, m := range msgs {
			msg := []byte(m)
			want := escaped(t, func(w *bufio.Writer) error { return writeEscaped(w, msg) })
			got := escaped(t, func(w *bufio.Writer) error { return writeEscapedFrom(w, bytes.NewReader(msg)) })
			if !bytes.Equal(got, want) {
				t.Fatalf("buffer %d, message %q:\nstreamed  %q\nin memory %q", size, m, got, want)
			}
			want = escaped(t, func(w *bufio.Writer) error { return writeEscaped(w, mailhdr.StripFromLine(msg)) })
			got = escaped(t, func(w *bufio.Writer) error {
				return writeMailFrom(w, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(msg)), nil })
			})
			if !bytes.Equal(got, want) {
				t.Fatalf("buffer %d, mail %q:\nstreamed  %q\nin memory %q", size, m, got, want)
			}
		}
	}
}

// BenchmarkEscape compares streaming a 16 MB mail of short lines with
// escaping it in memory: streaming must not cost much more.
func BenchmarkEscape(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"), 16<<20/66)
	w := bufio.NewWriter(io.Discard)
	b.Run("memory", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := writeEscaped(w, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := writeEscapedFrom(w, bytes.NewReader(msg)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
