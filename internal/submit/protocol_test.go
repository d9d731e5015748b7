package submit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"herald/internal/spool"
)

const testSubmission = "0123456789abcdef0123456789abcdef"

func testRequest() Request {
	return Request{Kind: spool.KindMail, Source: "sendmail", Submission: testSubmission,
		From: "cron@host.example", Recipients: []string{"root", "ops@example.org"}}
}

// request returns the whole request bytes: header and body.
func request(t testing.TB, r Request, body string) []byte {
	t.Helper()
	head, err := EncodeRequest(r, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	return append(head, body...)
}

func read(b []byte, max int64) (Request, string, error) {
	br := bufio.NewReader(bytes.NewReader(b))
	req, n, err := ReadRequest(br, max)
	if err != nil {
		return req, "", err
	}
	body, err := io.ReadAll(&bodyReader{r: br, n: n})
	return req, string(body), err
}

func TestRequestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  Request
		body string
	}{
		{"mail", testRequest(), "Subject: hi\n\nbody\n"},
		{"null sender, no recipients, empty body", Request{Kind: spool.KindMail, Source: "sendmail", Submission: testSubmission}, ""},
		{"event from notify", Request{Kind: spool.KindEvent, Source: "notify", Submission: testSubmission, From: "x"}, `{"title":"t"}`},
		{"odd bytes", Request{Kind: spool.KindMail, Source: "sendmail", Submission: testSubmission,
			From: "a\x00b\"c\n", Recipients: []string{"", "\xff\xfe", strings.Repeat("r", 1000)}}, "\x00\r\n.\r\n\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, body, err := read(request(t, tc.req, tc.body), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.req.Recipients) == 0 {
				tc.req.Recipients = nil
			}
			if !reflect.DeepEqual(got, tc.req) {
				t.Errorf("request %+v, want %+v", got, tc.req)
			}
			if body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
		})
	}
}

// Every prefix of a valid request is refused: a client that disappears
// mid-request never yields a request with a shorter body.
func TestRequestTruncated(t *testing.T) {
	full := request(t, testRequest(), "Subject: hi\n\nbody\n")
	for i := 0; i < len(full); i++ {
		_, _, err := read(full[:i], 0)
		if err == nil {
			t.Fatalf("a request cut after %d of %d bytes was read as complete", i, len(full))
		}
		if i > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut after %d bytes: %v, want io.ErrUnexpectedEOF", i, err)
		}
	}
}

func TestRequestTooLarge(t *testing.T) {
	body := strings.Repeat("x", 101)
	if _, _, err := read(request(t, testRequest(), body), 100); !errors.Is(err, ErrTooLarge) || !errors.Is(err, spool.ErrTooLarge) {
		t.Fatalf("101 bytes with a limit of 100: %v, want ErrTooLarge", err)
	}
	if _, got, err := read(request(t, testRequest(), body[:100]), 100); err != nil || got != body[:100] {
		t.Fatalf("100 bytes with a limit of 100: %v", err)
	}
	// The client refuses too.
	if _, err := EncodeRequest(testRequest(), MaxMessageSize+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("encode over MaxMessageSize: %v", err)
	}
	big := testRequest()
	big.Recipients = []string{strings.Repeat("r", MaxHeader)}
	if _, err := EncodeRequest(big, 0); !errors.Is(err, spool.ErrEnvelopeTooLarge) {
		t.Fatalf("encode an envelope over MaxHeader: %v", err)
	}
	// A body length beyond any limit, and a header length beyond
	// MaxHeader, are refused before anything is allocated for them.
	var b []byte
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, MaxHeader+1)
	if _, _, err := read(b, 0); !isProtocol(err, "header of") {
		t.Fatalf("header length over MaxHeader: %v", err)
	}
	head, _ := EncodeRequest(testRequest(), 0)
	binary.BigEndian.PutUint64(head[len(head)-8:], 1<<63)
	if _, _, err := read(head, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("body length 2^63: %v", err)
	}
}

func isProtocol(err error, msg string) bool {
	var pe *ProtocolError
	return errors.As(err, &pe) && strings.Contains(err.Error(), msg)
}

// header builds a request header from raw fields.
func header(fields ...any) []byte {
	var h []byte
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			h = appendString(h, v)
		case uint32:
			h = binary.BigEndian.AppendUint32(h, v)
		case []byte:
			h = append(h, v...)
		}
	}
	out := []byte{Version}
	out = binary.BigEndian.AppendUint32(out, uint32(len(h)))
	out = append(out, h...)
	return binary.BigEndian.AppendUint64(out, 0)
}

// Garbage gets a protocol error that says what is wrong.
func TestRequestGarbage(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"HTTP", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "version 71, want 1"},
		{"SMTP", []byte("EHLO x\r\n"), "version 69"},
		{"version 2", append([]byte{2}, request(t, testRequest(), "")[1:]...), "version 2"},
		{"kind", header("spam", "sendmail", testSubmission, "", uint32(0)), `kind "spam"`},
		{"source smtp", header("mail", "smtp", testSubmission, "", uint32(0)), `source "smtp"`},
		{"source http", header("event", "http", testSubmission, "", uint32(0)), `source "http"`},
		{"submission missing", header("mail", "sendmail", "", "", uint32(0)), "submission ID"},
		{"submission upper case", header("mail", "sendmail", strings.ToUpper(testSubmission), "", uint32(0)), "submission ID"},
		{"string longer than header", header("mail", "sendmail", testSubmission, uint32(1000), []byte("ab")), "string of 1000 bytes"},
		{"recipient count lies", header("mail", "sendmail", testSubmission, "", uint32(1<<30)), "recipients in"},
		{"recipients missing", header("mail", "sendmail", testSubmission, "", uint32(2), "a"), "2 recipients in 5 bytes"},
		{"recipient cut", header("mail", "sendmail", testSubmission, "", uint32(2), "a", []byte{0, 0, 0}), "truncated"},
		{"trailing bytes", header("mail", "sendmail", testSubmission, "", uint32(0), []byte("junk")), "4 bytes after the recipients"},
		{"no count", header("mail", "sendmail", testSubmission, ""), "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := read(tc.in, 0)
			if !isProtocol(err, tc.want) {
				t.Fatalf("got %v, want a protocol error saying %q", err, tc.want)
			}
		})
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		status byte
		text   string
	}{
		{StatusOK, "18ed6006735d0154-903e38b6"},
		{StatusTempFail, "spool: reserve: free space below the spool's reserve"},
		{StatusDataErr, strings.Repeat("x", MaxReplyText+10)},
	} {
		st, text, err := ReadReply(bytes.NewReader(EncodeReply(tc.status, tc.text)))
		want := tc.text[:min(len(tc.text), MaxReplyText)]
		if err != nil || st != tc.status || text != want {
			t.Errorf("reply (%d, %.20q): got (%d, %.20q, %v)", tc.status, tc.text, st, text, err)
		}
	}
	full := EncodeReply(StatusOK, "id")
	for i := 0; i < len(full); i++ {
		if _, _, err := ReadReply(bytes.NewReader(full[:i])); err == nil {
			t.Fatalf("a reply cut after %d bytes was read", i)
		}
	}
	bad := EncodeReply(StatusOK, "id")
	bad[0] = 9
	if _, _, err := ReadReply(bytes.NewReader(bad)); !isProtocol(err, "reply version 9") {
		t.Fatalf("reply version 9: %v", err)
	}
	long := EncodeReply(StatusOK, "")
	binary.BigEndian.PutUint32(long[2:], MaxReplyText+1)
	if _, _, err := ReadReply(bytes.NewReader(long)); !isProtocol(err, "reply text of") {
		t.Fatalf("reply text over the limit: %v", err)
	}
}
