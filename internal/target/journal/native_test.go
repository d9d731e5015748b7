package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"herald/internal/event"
	"slices"
	"strings"
	"testing"
)

// parseNative parses an entry in journald's native format, as journald's
// server_process_native_message does: each field is NAME=value\n, or NAME\n
// followed by a 64-bit little-endian length, that many bytes and \n.
func parseNative(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("field %d: no terminating newline", len(out))
		}
		line := b[:nl]
		if eq := bytes.IndexByte(line, '='); eq >= 0 {
			name := string(line[:eq])
			if !validName(name) {
				return nil, fmt.Errorf("field %d: invalid name %q", len(out), name)
			}
			out = append(out, field{name, string(line[eq+1:])})
			b = b[nl+1:]
			continue
		}
		name := string(line)
		if !validName(name) {
			return nil, fmt.Errorf("field %d: invalid name %q", len(out), name)
		}
		b = b[nl+1:]
		if len(b) < 8 {
			return nil, fmt.Errorf("field %s: truncated length", name)
		}
		n := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if n >= uint64(len(b)) {
			return nil, fmt.Errorf("field %s: length %d beyond the %d bytes left", name, n, len(b))
		}
		if b[n] != '\n' {
			return nil, fmt.Errorf("field %s: binary value not followed by newline", name)
		}
		out = append(out, field{name, string(b[:n])})
		b = b[n+1:]
	}
	return out, nil
}

func TestFieldName(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		in, want string
	}{
		{"type", "HERALD_FIELD_TYPE"},
		{"hostname", "HERALD_FIELD_HOSTNAME"},
		{"message-id", "HERALD_FIELD_MESSAGE_ID"},
		{"job.id", "HERALD_FIELD_JOB_ID"},
		{"Already_UPPER_9", "HERALD_FIELD_ALREADY_UPPER_9"},
		{"_leading", "HERALD_FIELD__LEADING"},
		{"9lives", "HERALD_FIELD_9LIVES"},
		{"", "HERALD_FIELD_"},
		{"größe", "HERALD_FIELD_GR__E"},
		{"a b=c\n", "HERALD_FIELD_A_B_C_"},
		{"\xff\xfe", "HERALD_FIELD___"},
		{long, "HERALD_FIELD_" + strings.Repeat("X", 64-len(event.ExportPrefix))},
	}
	for _, tt := range tests {
		got := event.ExportName(tt.in)
		if got != tt.want {
			t.Errorf("event.ExportName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !validName(got) {
			t.Errorf("event.ExportName(%q) = %q is not a valid journal field name", tt.in, got)
		}
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"MESSAGE", true},
		{"A", true},
		{"A_1", true},
		{"", false},
		{"_PID", false},
		{"1A", false},
		{"message", false},
		{"A-B", false},
		{"A=B", false},
		{strings.Repeat("A", 64), true},
		{strings.Repeat("A", 65), false},
	}
	for _, tt := range tests {
		if got := validName(tt.in); got != tt.want {
			t.Errorf("validName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name   string
		fields []field
		want   []byte
	}{
		{"plain", []field{{"A", "b"}, {"C", ""}}, []byte("A=b\nC=\n")},
		{"binary", []field{{"M", "x\ny"}}, []byte("M\n\x03\x00\x00\x00\x00\x00\x00\x00x\ny\n")},
		{"only newline", []field{{"M", "\n"}}, []byte("M\n\x01\x00\x00\x00\x00\x00\x00\x00\n\n")},
		{"equals in value", []field{{"M", "a=b"}}, []byte("M=a=b\n")},
		{"empty", nil, []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encode(tt.fields)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("encode = %q, want %q", got, tt.want)
			}
			back, err := parseNative(got)
			if err != nil {
				t.Fatalf("parseNative(encode) failed: %v", err)
			}
			if !slices.Equal(back, tt.fields) && !(len(back) == 0 && len(tt.fields) == 0) {
				t.Fatalf("round trip = %q, want %q", back, tt.fields)
			}
		})
	}
}

func TestParseNativeRejects(t *testing.T) {
	for _, in := range []string{
		"A=b",         // no newline
		"a=b\n",       // lower-case name
		"_PID=1\n",    // trusted field
		"A\n\x05\x00", // short length
		"A\n\x05\x00\x00\x00\x00\x00\x00\x00ab\n", // length beyond data
		"A\n\x01\x00\x00\x00\x00\x00\x00\x00ab",   // no newline after value
	} {
		if f, err := parseNative([]byte(in)); err == nil {
			t.Errorf("parseNative(%q) = %q, want an error", in, f)
		}
	}
}

// FuzzFieldName checks that every name maps to a valid journal field name
// that keeps the prefix and the name's valid characters.
func FuzzFieldName(f *testing.F) {
	for _, s := range []string{"type", "message-id", "", "_x", "9", "größe", "\xff", strings.Repeat("a", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := event.ExportName(name)
		if !validName(got) {
			t.Fatalf("event.ExportName(%q) = %q: invalid journal field name", name, got)
		}
		if !strings.HasPrefix(got, event.ExportPrefix) {
			t.Fatalf("event.ExportName(%q) = %q: prefix lost", name, got)
		}
		if event.ExportName(name) != got {
			t.Fatalf("event.ExportName(%q) not deterministic", name)
		}
		// A name made only of valid characters survives, up-cased, as far as
		// the length limit allows.
		if !strings.ContainsFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
		}) {
			want := event.ExportPrefix + strings.ToUpper(name)
			if len(want) > maxNameLen {
				want = want[:maxNameLen]
			}
			if got != want {
				t.Fatalf("event.ExportName(%q) = %q, want %q", name, got, want)
			}
		}
	})
}

// FuzzEncodeRoundTrip checks that whatever values (and sanitised names) go
// into an entry come back out of the parser unchanged.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("MESSAGE", "hello", "x-y", "a\nb", "zz", "")
	f.Add("", "\n", "_", "\x00\n\n", "9", "=\n=")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2, n3, v3 string) {
		in := []field{{event.ExportName(n1), v1}, {event.ExportName(n2), v2}, {event.ExportName(n3), v3}}
		out, err := parseNative(encode(in))
		if err != nil {
			t.Fatalf("parse(encode(%q)): %v", in, err)
		}
		if !slices.Equal(in, out) {
			t.Fatalf("round trip: got %q, want %q", out, in)
		}
	})
}

// FuzzParseNative feeds arbitrary bytes to the test parser: it must not
// panic, and what it accepts must encode back to the same bytes.
func FuzzParseNative(f *testing.F) {
	f.Add([]byte("A=b\nM\n\x03\x00\x00\x00\x00\x00\x00\x00x\ny\n"))
	f.Add([]byte("A\n\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("A\n\x00\x00\x00\x00\x00\x00\x00\x00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := parseNative(b)
		if err != nil {
			return
		}
		// The parser also accepts a newline-free value in binary form, which
		// the encoder writes in the short form, so compare fields, not bytes.
		again, err := parseNative(encode(fs))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", fs, err)
		}
		if !slices.Equal(fs, again) && !(len(fs) == 0 && len(again) == 0) {
			t.Fatalf("re-parse: got %q, want %q", again, fs)
		}
		if len(b) > 0 && len(fs) == 0 {
			t.Fatalf("non-empty input %q parsed to no fields", b)
		}
	})
}
