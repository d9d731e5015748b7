package mailout

import (
	"bytes"
	"encoding/base64"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/mailhdr"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var when = time.Date(2025, 5, 23, 11, 59, 32, 0, time.FixedZone("CEST", 2*3600))

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file %s (run with -update after checking):\n--- got ---\n%s\n--- want ---\n%s", name, path, got, want)
	}
}

// parsed is a composed message read back with the standard library.
type parsed struct {
	msg     *mail.Message
	subject string
	from    *mail.Address
	parts   map[string]string // media type -> decoded content
}

func parse(t testing.TB, raw []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot read the message: %v\n%s", err, raw)
	}
	var p parsed
	p.msg = msg
	dec := new(mime.WordDecoder)
	p.subject, err = dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("Subject %q: %v", msg.Header.Get("Subject"), err)
	}
	p.from, err = mail.ParseAddress(msg.Header.Get("From"))
	if err != nil {
		t.Fatalf("From %q: %v", msg.Header.Get("From"), err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	if mt != "multipart/alternative" {
		return p
	}
	p.parts = map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v\n%s", err, raw)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		pt, pparams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("part Content-Type: %v", err)
		}
		if pparams["charset"] != "utf-8" {
			t.Errorf("part %s charset = %q, want utf-8", pt, pparams["charset"])
		}
		switch cte := part.Header.Get("Content-Transfer-Encoding"); cte {
		case "7bit":
			for _, c := range b {
				if c >= 0x80 {
					t.Fatalf("8-bit octet in a 7bit part")
				}
			}
		case "base64":
			for _, line := range strings.Split(string(b), "\r\n") {
				if len(line) > 76 {
					t.Errorf("base64 line of %d characters", len(line))
				}
			}
			b, err = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(b), "\r\n", ""))
			if err != nil {
				t.Fatalf("base64: %v", err)
			}
		default:
			t.Fatalf("unexpected Content-Transfer-Encoding %q", cte)
		}
		p.parts[pt] = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	return p
}

func testEvent() *event.Event {
	return &event.Event{
		ID:        "0c0a9c52-6d43-4b7a-9e47-0d1f7d5b1a11",
		Timestamp: when,
		Severity:  event.Error,
		Title:     "vzdump backup status (pve1.example.com): backup failed",
		Body:      "Details\n=======\nVMID  Name  Status\n100   web   err <disk full> & more\n",
		Fields:    map[string]string{"type": "vzdump", "hostname": "pve1", "job-id": "backup-1"},
	}
}

func TestCompose(t *testing.T) {
	nonASCII := testEvent()
	nonASCII.Title = "Sicherung fehlgeschlagen: Größe überschritten — Knoten pve1 ✓"
	nonASCII.Body = "Die Sicherung von VM 100 ist fehlgeschlagen.\nGrund: Speicherplatz erschöpft\n"

	long := testEvent()
	long.Title = strings.Repeat("word ", 30) + "end"
	long.Body = strings.Repeat("x", 1200) + "\n"

	tests := []struct {
		name       string
		ev         *event.Event
		hdr        Header
		wantFrom   string // From address
		wantName   string // decoded display name
		wantTo     []string
		wantEncode map[string]string // part -> CTE
	}{
		{
			name: "ascii",
			ev:   testEvent(),
			hdr: Header{From: "root", Author: "Proxmox VE", To: []string{"ops@example.org", "root"},
				Hostname: "pve1.example.com", Date: when, MessageID: "fixed-id@pve1.example.com"},
			wantFrom: "root@pve1.example.com", wantName: "Proxmox VE",
			wantTo:     []string{"ops@example.org", "root@pve1.example.com"},
			wantEncode: map[string]string{"text/plain": "7bit", "text/html": "7bit"},
		},
		{
			name: "non-ascii",
			ev:   nonASCII,
			hdr: Header{From: "backup@example.org", Author: "Zürich Backup", To: []string{"a@example.org"},
				Hostname: "pve1.example.com"},
			wantFrom: "backup@example.org", wantName: "Zürich Backup",
			wantTo:     []string{"a@example.org"},
			wantEncode: map[string]string{"text/plain": "base64", "text/html": "base64"},
		},
		{
			name: "author-specials",
			ev:   testEvent(),
			hdr: Header{From: "pbs@example.org", Author: `Proxmox Backup Server - pbs1, "main" (dc=1)`,
				To: []string{"a@example.org"}, Hostname: "pbs1"},
			wantFrom: "pbs@example.org", wantName: `Proxmox Backup Server - pbs1, "main" (dc=1)`,
			wantTo:     []string{"a@example.org"},
			wantEncode: map[string]string{"text/plain": "7bit", "text/html": "7bit"},
		},
		{
			name: "long-lines",
			ev:   long,
			hdr: Header{From: "root@example.org", Author: "herald",
				To:       []string{"a@example.org", "b@example.org", "c@example.org", "d@example.org", "e@example.org", "f@example.org"},
				Hostname: "h"},
			wantFrom: "root@example.org", wantName: "herald",
			wantTo:     []string{"a@example.org", "b@example.org", "c@example.org", "d@example.org", "e@example.org", "f@example.org"},
			wantEncode: map[string]string{"text/plain": "base64", "text/html": "base64"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := Compose(tc.ev, tc.hdr)
			golden(t, "compose-"+tc.name, raw)
			for i, line := range strings.Split(string(raw), "\r\n") {
				if len(line) > 78 && !strings.HasPrefix(line, "This is") {
					t.Errorf("line %d has %d characters: %q", i+1, len(line), line)
				}
				if strings.Contains(line, "\n") || strings.Contains(line, "\r") {
					t.Errorf("line %d has a bare CR or LF", i+1)
				}
			}
			p := parse(t, raw)
			if p.subject != tc.ev.Title {
				t.Errorf("Subject = %q, want %q", p.subject, tc.ev.Title)
			}
			if p.from.Address != tc.wantFrom || p.from.Name != tc.wantName {
				t.Errorf("From = %q <%s>, want %q <%s>", p.from.Name, p.from.Address, tc.wantName, tc.wantFrom)
			}
			to, err := p.msg.Header.AddressList("To")
			if err != nil {
				t.Fatalf("To: %v", err)
			}
			var got []string
			for _, a := range to {
				got = append(got, a.Address)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantTo, ",") {
				t.Errorf("To = %v, want %v", got, tc.wantTo)
			}
			for k, want := range map[string]string{"Auto-Submitted": "auto-generated", "MIME-Version": "1.0"} {
				if v := p.msg.Header.Get(k); v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			d, err := p.msg.Header.Date()
			if err != nil || !d.Equal(when) {
				t.Errorf("Date = %v (%v), want %v", d, err, when)
			}
			if id := p.msg.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.Contains(id, "@") {
				t.Errorf("Message-ID = %q", id)
			}
			if len(p.parts) != 2 {
				t.Fatalf("got parts %v, want text/plain and text/html", p.parts)
			}
			text := p.parts["text/plain"]
			if !strings.HasPrefix(text, tc.ev.Body) {
				t.Errorf("text part does not start with the body:\n%s", text)
			}
			for _, want := range []string{"\n-- \n", "severity: error\n", "type: vzdump\n", "hostname: pve1\n", "event-id: " + tc.ev.ID + "\n"} {
				if !strings.Contains(text, want) {
					t.Errorf("text part lacks %q:\n%s", want, text)
				}
			}
			htmlPart := p.parts["text/html"]
			if !strings.HasPrefix(htmlPart, "<html><body><pre>") || strings.Contains(htmlPart, "<disk") {
				t.Errorf("html part not an escaped <pre>:\n%s", htmlPart)
			}
			for part, cte := range tc.wantEncode {
				hdr := "Content-Type: " + part + "; charset=utf-8\r\nContent-Transfer-Encoding: " + cte + "\r\n"
				if !bytes.Contains(raw, []byte(hdr)) {
					t.Errorf("%s is not %s", part, cte)
				}
			}
		})
	}
}

func TestComposeHeaderInjection(t *testing.T) {
	ev := testEvent()
	ev.Title = "hello\r\nBcc: victim@example.org\r\n\r\nfake body"
	ev.Fields["evil"] = "x\r\nX-Injected: 1"
	raw := Compose(ev, Header{
		From:     "root@example.org\r\nX-From-Injected: 1",
		Author:   "herald\nX-Author-Injected: 1",
		To:       []string{"a@example.org\r\nCc: b@example.org"},
		Hostname: "h", MessageID: "id\r\nX-ID-Injected: 1",
	})
	// The addresses are garbage now, but garbage inside their own headers.
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("cannot read: %v\n%s", err, raw)
	}
	for k := range msg.Header {
		switch k {
		case "From", "To", "Subject", "Date", "Message-Id", "Auto-Submitted", "Mime-Version", "Content-Type":
			if len(msg.Header[k]) != 1 {
				t.Errorf("header %q repeated: %q", k, msg.Header[k])
			}
		default:
			t.Errorf("unexpected header %q: %q", k, msg.Header[k])
		}
	}
	if want := "hello  Bcc: victim@example.org    fake body"; msg.Header.Get("Subject") != want {
		t.Errorf("Subject = %q, want %q", msg.Header.Get("Subject"), want)
	}
	body, _ := io.ReadAll(msg.Body)
	if !bytes.Contains(body, []byte("evil: x  X-Injected: 1\r\n")) {
		t.Errorf("field value with CRLF not flattened in the text part:\n%s", body)
	}
}

func TestComposeNoAuthorNoDate(t *testing.T) {
	ev := testEvent()
	ev.Timestamp = time.Time{}
	raw := Compose(ev, Header{From: "root@example.org", To: []string{"a@example.org"}, Hostname: "h"})
	p := parse(t, raw)
	if p.msg.Header.Get("From") != "root@example.org" {
		t.Errorf("From = %q", p.msg.Header.Get("From"))
	}
	if _, ok := p.msg.Header["Date"]; ok {
		t.Errorf("Date header without a date")
	}
	if id := p.msg.Header.Get("Message-ID"); id != "<"+ev.ID+"@h>" {
		t.Errorf("default Message-ID = %q", id)
	}
}

func TestEncodeWords(t *testing.T) {
	for _, s := range []string{"", "a", "ü", strings.Repeat("€", 100), strings.Repeat("ab", 300), "=?utf-8?q?x?="} {
		enc := encodeWords(s, 9)
		for i, w := range strings.Fields(enc) {
			if len(w) > 75 || i == 0 && 9+len(w) > 76 {
				t.Errorf("encoded word of %d characters", len(w))
			}
		}
		got, err := new(mime.WordDecoder).DecodeHeader(enc)
		if err != nil || got != s {
			t.Errorf("encodeWords(%q) decodes to %q, %v", s, got, err)
		}
	}
}

const systemMail = "From root@pve1  Fri May 23 11:59:32 2025\n" +
	"Return-Path: <root@pve1.example.com>\n" +
	"X-Original-To: root\n" +
	"Delivered-To: root@pve1.example.com\n" +
	"Received: by pve1.example.com (Postfix, from userid 0)\n" +
	"\tid 4B2F81A0; Fri, 23 May 2025 11:59:32 +0200 (CEST)\n" +
	"Subject: =?utf-8?q?Cron_job_r=C3=BCckmeldung?=\n" +
	"To: root@pve1.example.com\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: multipart/mixed;\n" +
	"\tboundary=\"===============123==\"\n" +
	"Content-Transfer-Encoding: 7bit\n" +
	"Message-Id: <20250523095932.4B2F81A0@pve1.example.com>\n" +
	"Date: Fri, 23 May 2025 11:59:32 +0200 (CEST)\n" +
	"From: root (Cron Daemon) <root@pve1.example.com>\n" +
	"\n" +
	"--===============123==\n" +
	"Content-Type: text/plain; charset=\"utf-8\"\n" +
	"\n" +
	"job output\n" +
	"--===============123==--\n"

func systemEvent() *event.Event {
	return &event.Event{
		ID: "5d1c1f6e-3f4a-4c41-8d43-2a9f0c3b7e21", Timestamp: when, Severity: event.Unknown,
		Title: "Cron job rückmeldung", Body: "job output\n",
		Fields: map[string]string{"type": "system-mail", "hostname": "pve1"},
		Mail:   &event.Mail{Raw: []byte(systemMail), From: "root@pve1.example.com", Recipients: []string{"root"}},
	}
}

func TestForward(t *testing.T) {
	ev := systemEvent()
	got := Forward(ev)
	want := systemMail[strings.IndexByte(systemMail, '\n')+1:]
	if string(got) != want {
		t.Errorf("Forward changed more than the From_ line:\n%s", got)
	}
	ev.Mail.Raw = []byte(want)
	if string(Forward(ev)) != want {
		t.Errorf("Forward changed a mail without From_ line")
	}
	if Forward(&event.Event{}) != nil {
		t.Errorf("Forward without mail is not nil")
	}
}

func TestForwardSMTP(t *testing.T) {
	ev := systemEvent()
	raw := ForwardSMTP(ev, Header{From: "pve1@example.org", Author: "Proxmox VE", To: []string{"ops@example.org"},
		Hostname: "pve1.example.com", Date: when, MessageID: "fwd-1@pve1.example.com"})
	golden(t, "forward-smtp", raw)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("cannot read: %v\n%s", err, raw)
	}
	want := map[string]string{
		"From":                      `"Proxmox VE" <pve1@example.org>`,
		"To":                        "ops@example.org",
		"Subject":                   "=?UTF-8?B?Q3JvbiBqb2IgcsO8Y2ttZWxkdW5n?=",
		"Message-Id":                "<fwd-1@pve1.example.com>",
		"Auto-Submitted":            "auto-generated",
		"Mime-Version":              "1.0",
		"Content-Type":              `multipart/mixed; boundary="===============123=="`,
		"Content-Transfer-Encoding": "7bit",
		"Date":                      when.Format(time.RFC1123Z),
	}
	for k, v := range want {
		if got := msg.Header.Get(k); got != v && !(k == "From" && got == "Proxmox VE <pve1@example.org>") {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(msg.Header) != len(want) {
		t.Errorf("headers %v, want exactly %d", msg.Header, len(want))
	}
	body, _ := io.ReadAll(msg.Body)
	wantBody := systemMail[strings.Index(systemMail, "\n\n")+2:]
	if string(body) != wantBody {
		t.Errorf("body changed:\n%q\nwant\n%q", body, wantBody)
	}
	// The multipart structure still parses with the copied Content-Type.
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	part, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(part); string(b) != "job output" {
		t.Errorf("inner part = %q", b)
	}
}

func TestSplitMessage(t *testing.T) {
	tests := []struct {
		raw, body string
		names     []string
	}{
		{"A: 1\r\nB: 2\r\n\r\nbody\r\n", "body\r\n", []string{"A", "B"}},
		{"A: 1\n folded\nB: 2\n\nbody", "body", []string{"A", "B"}},
		{"A: 1\nnot a header line\nmore", "not a header line\nmore", []string{"A"}},
		{"A: 1\nB: 2", "", []string{"A", "B"}},
		{" leading continuation\n\nx", " leading continuation\n\nx", nil},
		{"", "", nil},
	}
	for _, tc := range tests {
		fields, body := splitMessage([]byte(tc.raw))
		var names []string
		for _, f := range fields {
			names = append(names, f.name)
		}
		if string(body) != tc.body || strings.Join(names, ",") != strings.Join(tc.names, ",") {
			t.Errorf("splitMessage(%q) = %v, %q; want %v, %q", tc.raw, names, body, tc.names, tc.body)
		}
	}
}

func FuzzCompose(f *testing.F) {
	f.Add("backup failed", "body\n", "Proxmox VE", "pve1")
	f.Add("héllo wörld", "zeilen\r\nmit CRLF\r", "Zürich, \"Backup\"", "x\ny")
	f.Add("a\r\nBcc: x@example.org", strings.Repeat("long ", 300), "(a) <b> @c", "")
	f.Add(strings.Repeat("x", 2000), "\x00\xff", "=?utf-8?q?a?=", "\xc3")
	f.Add(" trailing space ", "", "  ", "--herald-")
	f.Fuzz(func(t *testing.T, title, body, author, value string) {
		ev := testEvent()
		ev.Title, ev.Body, ev.Fields["value"] = title, body, value
		raw := Compose(ev, Header{From: "root@example.org", Author: author,
			To: []string{"a@example.org", "b@example.org"}, Hostname: "h", Date: when})
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\n' && (i == 0 || raw[i-1] != '\r') || raw[i] == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
				t.Fatalf("bare CR or LF at %d", i)
			}
			if raw[i] >= 0x80 {
				t.Fatalf("8-bit octet at %d", i)
			}
		}
		for line := range strings.SplitSeq(string(raw), "\r\n") {
			if len(line) > maxLineLen {
				t.Fatalf("line of %d octets: %.60q", len(line), line)
			}
		}
		p := parse(t, raw)
		for k := range p.msg.Header {
			switch k {
			case "From", "To", "Subject", "Date", "Message-Id", "Auto-Submitted", "Mime-Version", "Content-Type":
			default:
				t.Fatalf("injected header %q", k)
			}
		}
		if got, want := strings.Fields(p.subject), strings.Fields(sanitizeText(title)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("Subject %q, want %q", p.subject, sanitizeText(title))
		}
		if got, want := strings.Fields(p.from.Name), strings.Fields(sanitizeText(author)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("From name %q, want %q", p.from.Name, sanitizeText(author))
		}
		if p.from.Address != "root@example.org" {
			t.Fatalf("From address %q", p.from.Address)
		}
		if !strings.HasPrefix(p.parts["text/plain"], normalizeNewlines(strings.ToValidUTF8(body, "\uFFFD"))) {
			t.Fatalf("text part lost the body")
		}
		if _, ok := p.parts["text/html"]; !ok {
			t.Fatalf("no html part")
		}
	})
}

func FuzzForwardSMTP(f *testing.F) {
	f.Add([]byte(systemMail))
	f.Add([]byte("Subject: x\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n\r\nbody\r\n"))
	f.Add([]byte("no header at all\n\nbody"))
	f.Add([]byte("From nobody\nBcc: x\n\n"))
	f.Add([]byte("Content-Type: a\n\tb\nContent-Type: second\nX: \xff\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev := systemEvent()
		ev.Mail.Raw = raw
		out := ForwardSMTP(ev, Header{From: "a@example.org", To: []string{"b@example.org"}, Hostname: "h", Date: when})
		msg, err := mail.ReadMessage(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("cannot read: %v\n%q", err, out)
		}
		for k, v := range msg.Header {
			switch k {
			case "From", "To", "Subject", "Date", "Message-Id", "Auto-Submitted":
				if len(v) != 1 {
					t.Fatalf("%s repeated", k)
				}
			case "Mime-Version", "Content-Type", "Content-Transfer-Encoding":
				if len(v) != 1 {
					t.Fatalf("%s copied %d times", k, len(v))
				}
			default:
				t.Fatalf("header %q leaked from the original", k)
			}
		}
		_, wantBody := splitMessage(mailhdr.StripFromLine(raw))
		body, _ := io.ReadAll(msg.Body)
		if !bytes.Equal(body, wantBody) {
			t.Fatalf("body changed")
		}
	})
}
