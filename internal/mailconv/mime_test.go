package mailconv

import (
	"herald/internal/mailhdr"
	"reflect"
	"testing"
)

func TestSplitHeader(t *testing.T) {
	tests := []struct {
		name, in, hdr, body string
	}{
		{"normal", "Subject: a\nTo: b\n\nbody\n", "Subject: a\nTo: b\n", "body\n"},
		{"crlf", "Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n", "body\r\n"},
		{"folded", "Subject: a\n b\n\nbody", "Subject: a\n b\n", "body"},
		{"space before colon", "Subject : a\n\nbody", "Subject : a\n", "body"},
		{"empty header", "\nbody", "", "body"},
		{"header only", "Subject: a\nTo: b", "Subject: a\nTo: b", ""},
		{"no separator", "Subject: a\nthis is text\n", "Subject: a\n", "this is text\n"},
		{"no header", "just text\nmore\n", "", "just text\nmore\n"},
		{"text looking like a field", "Note: disk full\nmore text\n", "", "Note: disk full\nmore text\n"},
		{"unknown field then blank line", "Note: a\n\nbody", "Note: a\n", "body"},
		{"leading continuation", " Subject: a\n\nbody", "", " Subject: a\n\nbody"},
		{"bad field name", "Sub ject: a\n\nbody", "", "Sub ject: a\n\nbody"},
		{"empty", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, b := splitHeader([]byte(tc.in))
			if string(h) != tc.hdr || string(b) != tc.body {
				t.Errorf("splitHeader(%q) = %q, %q; want %q, %q", tc.in, h, b, tc.hdr, tc.body)
			}
		})
	}
}

func TestStripFromLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"From root@pve1  Fri May 23 11:59:32 2025\nSubject: x\n\nb", "Subject: x\n\nb"},
		{"From: root\n\nb", "From: root\n\nb"}, // a From: field is not an envelope line
		{"From root", "From root"},
		{"Subject: x\n\nFrom here", "Subject: x\n\nFrom here"},
		{"From the backup job: all good\nsecond line\n", "From the backup job: all good\nsecond line\n"},
		{"From root@pve1  Fri May 23 11:59:32 2025\r\nReturn-Path: <r@x>\r\n\r\nb", "Return-Path: <r@x>\r\n\r\nb"},
	}
	for _, tc := range tests {
		if got := string(mailhdr.StripFromLine([]byte(tc.in))); got != tc.want {
			t.Errorf("stripFromLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitMultipart(t *testing.T) {
	tests := []struct {
		name, body, boundary string
		parts                []string
		found                bool
	}{
		{"normal", "preamble\n--b\nA: 1\n\none\n--b\n\ntwo\n--b--\nepilogue\n", "b",
			[]string{"A: 1\n\none", "\ntwo"}, true},
		{"crlf", "--b\r\n\r\none\r\n--b--\r\n", "b", []string{"\r\none"}, true},
		{"delimiter with trailing blanks", "--b  \n\none\n--b-- \n", "b", []string{"\none"}, true},
		{"no close delimiter", "--b\n\none\n--b\n\ntwo", "b", []string{"\none", "\ntwo"}, true},
		{"longer boundary is not ours", "--b\n\none\n--bc\nstill one\n--b--", "b", []string{"\none\n--bc\nstill one"}, true},
		{"empty part", "--b\n--b--", "b", []string{""}, true},
		{"no delimiter", "just text\n", "b", nil, false},
		{"empty boundary", "--\n\ntext", "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raws, found := splitMultipart([]byte(tc.body), tc.boundary)
			var got []string
			for _, r := range raws {
				got = append(got, string(r))
			}
			if found != tc.found || !reflect.DeepEqual(got, tc.parts) {
				t.Errorf("splitMultipart = %q, %v; want %q, %v", got, found, tc.parts, tc.found)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		in     string
		mt     string
		params map[string]string
	}{
		{"text/plain; charset=UTF-8", "text/plain", map[string]string{"charset": "UTF-8"}},
		{"", "", map[string]string{}},
		{"TEXT/HTML", "text/html", map[string]string{}},
		{`multipart/mixed; boundary="a b"`, "multipart/mixed", map[string]string{"boundary": "a b"}},
		// Rejected by mime.ParseMediaType, parsed leniently:
		{`text/plain; charset="utf-8`, "text/plain", map[string]string{"charset": "utf-8"}},
		{"text/plain; charset=utf-8; charset=latin1", "text/plain", map[string]string{"charset": "utf-8"}},
		{"text/plain;; format=flowed;", "text/plain", map[string]string{"format": "flowed"}},
		{`attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`, "attachment", map[string]string{"filename": "résumé.pdf"}},
	}
	for _, tc := range tests {
		mt, params := parseParams(tc.in)
		if mt != tc.mt || !reflect.DeepEqual(params, tc.params) {
			t.Errorf("parseParams(%q) = %q, %v; want %q, %v", tc.in, mt, params, tc.mt, tc.params)
		}
	}
}

func TestLoneCRToLF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"A: 1\rB: 2\r\rbody\r", "A: 1\nB: 2\n\nbody\n"},
		{"A: 1\rB: 2\r\rbody\nwith one LF\r\n", "A: 1\nB: 2\n\nbody\nwith one LF\r\n"},
		{"A: 1\r\n\r\nprogress\r50%\r\n", "A: 1\r\n\r\nprogress\r50%\r\n"}, // CRLF header: untouched
		{"A: 1\n\nx\ry", "A: 1\n\nx\ry"},
		{"", ""},
		{"\r", "\n"},
	}
	for _, tc := range tests {
		if got := string(loneCRToLF([]byte(tc.in))); got != tc.want {
			t.Errorf("loneCRToLF(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
