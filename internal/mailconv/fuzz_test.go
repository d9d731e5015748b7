package mailconv

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzConvert checks that no input breaks the conversion: it never panics,
// always returns an event with valid UTF-8 text, keeps the raw mail and
// marshals. Every sample mail is a seed.
func FuzzConvert(f *testing.F) {
	for _, file := range sampleMails(f) {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, s := range []string{
		"",
		"\r",
		"From \n",
		"Subject: =?utf-8?q?x",
		"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n\n",
		"Content-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: multipart/alternative; boundary=a\n\n--a\n\nx",
		"Content-Type: text/html; charset=utf-16\n\n<\x00p\x00>\x00",
		"Content-Type: text/plain; charset=iso-2022-jp\nContent-Transfer-Encoding: base64\n\nGyRCJUYlOSVIGyhC",
		"Content-Type: text/html\n\n<table><tr><td>a<td>b<tr><th>c</table><a href=x>y</a>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev := Convert(raw, goldenOptions())
		checkEvent(t, raw, ev)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if !utf8.Valid(b) {
			t.Error("event JSON is not valid UTF-8")
		}
		m := Parse(raw)
		if m == nil || !utf8.ValidString(m.Body) || !utf8.ValidString(m.Subject) || strings.ContainsRune(m.Body, '\r') {
			t.Errorf("bad message view: %+v", m)
		}
		for _, a := range m.Attachments {
			if a.Size < 0 || !utf8.ValidString(a.Name) || !utf8.ValidString(a.ContentType) {
				t.Errorf("bad attachment %+v", a)
			}
		}
	})
}
