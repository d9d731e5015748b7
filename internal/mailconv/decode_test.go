package mailconv

import (
	"testing"
)

func TestDecodeQP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"caf=C3=A9", "café"},
		{"caf=c3=a9", "café"},             // lower-case hex occurs in the wild
		{"soft=\nbreak", "softbreak"},     // LF soft break
		{"soft=\r\nbreak", "softbreak"},   // CRLF soft break
		{"soft=  \r\nbreak", "softbreak"}, // blanks after "=" (transport padding)
		{"a = b", "a = b"},                // not an escape: kept
		{"50=% done", "50=% done"},        // invalid hex: kept
		{"=4", "=4"},                      // cut escape at the end
		{"end=", "end"},                   // "=" at the very end
		{"x=\n", "x"},                     // soft break at the end
		{"=3D=3D", "=="},                  // escaped equals
		{"line1\r\nline2=0D=0A", "line1\r\nline2\r\n"},
	}
	for _, tc := range tests {
		if got := string(decodeQP([]byte(tc.in))); got != tc.want {
			t.Errorf("decodeQP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	tests := []struct{ in, want string }{
		{"aGVsbG8gd29ybGQ=", "hello world"},
		{"aGVs\r\nbG8g\nd29y bGQ=", "hello world"}, // line breaks and blanks
		{"aGVsbG8gd29ybGQ", "hello world"},         // padding missing
		{"aGVsbG8=\nIHdvcmxk", "hello world"},      // padded per line
		{"aGVsbG8g!!d29y\x00bGQ=", "hello world"},  // garbage skipped
		{"aGVsbG8gd29yb", "hello wor"},             // truncated mid-quantum
		{"", ""},
		{"====", ""},
	}
	for _, tc := range tests {
		if got := string(decodeBase64([]byte(tc.in))); got != tc.want {
			t.Errorf("decodeBase64(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A segment longer than the internal buffer is decoded completely.
	long := make([]byte, 0, 10000)
	for i := 0; i < 2500; i++ {
		long = append(long, "QUJD"...)
	}
	if got := decodeBase64(long); len(got) != 7500 || string(got[:6]) != "ABCABC" {
		t.Errorf("long input decoded to %d bytes", len(got))
	}
	if n := base64Size([]byte("aGVs\r\nbG8g\r\nd29ybGQ=\r\n")); n != 11 {
		t.Errorf("base64Size = %d, want 11", n)
	}
}

func TestDecodeCharset(t *testing.T) {
	tests := []struct {
		name, label string
		in          []byte
		want        string
	}{
		{"utf-8", "utf-8", []byte("Grüße"), "Grüße"},
		{"utf-8 label case and quotes", `"UTF-8"`, []byte("Grüße"), "Grüße"},
		{"utf-8 with invalid bytes", "utf-8", []byte("Gr\xfc\xdfe"), "Gr\uFFFDe"}, // one U+FFFD per run
		{"no label, valid utf-8", "", []byte("Grüße"), "Grüße"},
		{"no label, latin1 bytes", "", []byte("Gr\xfc\xdfe"), "Grüße"},
		{"us-ascii label, 8-bit utf-8", "us-ascii", []byte("Grüße"), "Grüße"},
		{"latin1", "ISO-8859-1", []byte("Gr\xfc\xdfe"), "Grüße"},
		{"latin1 label, cp1252 quotes", "iso-8859-1", []byte("\x93hi\x94 \x80"), "\u201chi\u201d €"},
		{"iso-8859-15 euro", "iso-8859-15", []byte("5 \xa4"), "5 €"},
		{"koi8-r", "koi8-r", []byte("\xf0\xd2\xc9\xd7\xc5\xd4"), "Привет"},
		{"windows-1251", "windows-1251", []byte("\xcf\xf0\xe8\xe2\xe5\xf2"), "Привет"},
		{"shift_jis", "shift_jis", []byte("\x83\x65\x83\x58\x83\x67"), "テスト"},
		{"utf-16le", "utf-16le", []byte("h\x00i\x00"), "hi"},
		{"unknown label, latin1 bytes", "x-klingon", []byte("St\xf6rung"), "Störung"},
		{"unknown label, utf-8 bytes", "x-klingon", []byte("Störung"), "Störung"},
		{"garbage label", "\x00\xff;", []byte("ok"), "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := decodeCharset(tc.label, tc.in); got != tc.want {
				t.Errorf("decodeCharset(%q, %q) = %q, want %q", tc.label, tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?q?Caf=C3=A9?=", "Café"},
		{"=?UTF-8?B?W25hczJdIOKclA==?=", "[nas2] ✔"},
		{"=?iso-8859-1?q?J=F6rg?= <j@x>", "Jörg <j@x>"},
		{"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"}, // adjacent words join
		{"=?x-unknown?Q?Caf=E9?=", "Café"},    // unknown charset guessed
		{"=?x-unknown?B?Q2Fmw6k=?=", "Café"},  // ... also when it is UTF-8
		{"=?utf-8?q?bad", "=?utf-8?q?bad"},    // malformed word kept
		{"=?utf-8?q?line=0Abreak=00?=", "line break"},
		{"raw 8-bit Gr\xfc\xdfe", "raw 8-bit Grüße"}, // latin1 in a header
		{"raw UTF-8 Grüße", "raw UTF-8 Grüße"},       // bsmtp -8 subject
		{"tab\there", "tab here"},
		{"nul\x00byte", "nulbyte"},
	}
	for _, tc := range tests {
		if got := decodeHeaderValue(tc.in); got != tc.want {
			t.Errorf("decodeHeaderValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\rc\nd", "a\nb\nc\nd"},
		{"nul\x00s\x00", "nuls"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
		{"\r\r\n", "\n\n"},
	}
	for _, tc := range tests {
		if got := cleanText(tc.in); got != tc.want {
			t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCutUTF8(t *testing.T) {
	s := "aé€" // 1 + 2 + 3 bytes
	for n, want := range map[int]string{0: "", 1: "a", 2: "a", 3: "aé", 4: "aé", 5: "aé", 6: "aé€", 9: "aé€"} {
		if got := cutUTF8(s, n); got != want {
			t.Errorf("cutUTF8(%q, %d) = %q, want %q", s, n, got, want)
		}
	}
}
