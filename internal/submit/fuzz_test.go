package submit

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadRequest feeds the daemon's request parser arbitrary bytes: it
// never panics, accepts only what re-encodes to the same bytes, and its
// body reader yields exactly the announced length or fails.
func FuzzReadRequest(f *testing.F) {
	f.Add(request(f, testRequest(), "Subject: hi\n\nbody\n"))
	f.Add(request(f, Request{Kind: "event", Source: "notify", Submission: testSubmission}, `{"title":"x"}`))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(header("mail", "sendmail", testSubmission, "", uint32(1<<30)))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 16
		br := bufio.NewReader(bytes.NewReader(data))
		req, n, err := ReadRequest(br, max)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if n < 0 || n > max {
			t.Fatalf("body length %d outside [0, %d]", n, max)
		}
		head, err := EncodeRequest(req, n)
		if err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
		if !bytes.HasPrefix(data, head) {
			t.Fatalf("accepted request re-encodes differently:\n in %q\nout %q", data[:min(len(data), len(head))], head)
		}
		body, err := io.ReadAll(&bodyReader{r: br, n: n})
		rest := int64(len(data) - len(head))
		switch {
		case rest >= n && (err != nil || int64(len(body)) != n):
			t.Fatalf("body of %d bytes with %d available: got %d, %v", n, rest, len(body), err)
		case rest < n && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Fatalf("body of %d bytes with %d available: %v, want io.ErrUnexpectedEOF", n, rest, err)
		}
	})
}
