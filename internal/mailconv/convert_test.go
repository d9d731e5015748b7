package mailconv

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"herald/internal/event"
)

func TestClassifiers(t *testing.T) {
	raw := []byte("From: (Bacula) <bacula@x>\nSubject: Bacula: Backup OK of client-fd Incremental\n\nTermination: Backup OK\n")
	bacula := ClassifierFunc(func(m *Message, ev *event.Event) bool {
		if !strings.HasPrefix(m.Subject, "Bacula: ") {
			return false
		}
		ev.SetField("type", "bacula")
		ev.SetField("client", "client-fd")
		ev.Severity = event.Info
		return true
	})
	// declines after scribbling on the event: nothing of it may remain.
	scribbler := ClassifierFunc(func(m *Message, ev *event.Event) bool {
		ev.SetField("type", "scribble")
		ev.Title = "scribbled"
		ev.Severity = event.Error
		return false
	})
	panicker := ClassifierFunc(func(m *Message, ev *event.Event) bool {
		ev.SetField("type", "half-done")
		panic("classifier bug")
	})
	other := ClassifierFunc(func(m *Message, ev *event.Event) bool {
		ev.SetField("type", "other")
		return true
	})
	needsBody := ClassifierFunc(func(m *Message, ev *event.Event) bool {
		if m.Body != "Termination: Backup OK" || m.From != "(Bacula) <bacula@x>" || m.BodyType != "text/plain" {
			t.Errorf("classifier sees Body %q From %q BodyType %q", m.Body, m.From, m.BodyType)
		}
		return false
	})

	tests := []struct {
		name        string
		classifiers []Classifier
		wantType    string
		wantSev     event.Severity
		wantTitle   string
		wantLog     bool
	}{
		{"none", nil, "system-mail", event.Unknown, "Bacula: Backup OK of client-fd Incremental", false},
		{"match", []Classifier{bacula}, "bacula", event.Info, "Bacula: Backup OK of client-fd Incremental", false},
		{"first true wins", []Classifier{bacula, other}, "bacula", event.Info, "Bacula: Backup OK of client-fd Incremental", false},
		{"order matters", []Classifier{other, bacula}, "other", event.Unknown, "Bacula: Backup OK of client-fd Incremental", false},
		{"declined changes discarded", []Classifier{needsBody, scribbler}, "system-mail", event.Unknown, "Bacula: Backup OK of client-fd Incremental", false},
		{"panic skipped", []Classifier{panicker, bacula}, "bacula", event.Info, "Bacula: Backup OK of client-fd Incremental", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			opt := goldenOptions()
			opt.Classifiers = tc.classifiers
			opt.Log = slog.New(slog.NewTextHandler(&logBuf, nil))
			ev := Convert(raw, opt)
			if ev.Type() != tc.wantType || ev.Severity != tc.wantSev || ev.Title != tc.wantTitle {
				t.Errorf("got type %q severity %v title %q; want %q %v %q", ev.Type(), ev.Severity, ev.Title, tc.wantType, tc.wantSev, tc.wantTitle)
			}
			if ev.Fields["hostname"] != "pve1" || ev.Fields["from"] != "(Bacula) <bacula@x>" {
				t.Errorf("default fields lost: %v", ev.Fields)
			}
			if !bytes.Equal(ev.Mail.Raw, raw) {
				t.Error("raw mail lost")
			}
			if got := strings.Contains(logBuf.String(), "classifier panicked"); got != tc.wantLog {
				t.Errorf("panic logged = %v, want %v; log: %s", got, tc.wantLog, logBuf.String())
			}
		})
	}
}

func TestClassifierCannotBreakInvariants(t *testing.T) {
	vandal := ClassifierFunc(func(m *Message, ev *event.Event) bool {
		ev.Title = "bad \xff title"
		ev.Body = "bad \xfe body"
		ev.Fields = nil
		ev.Mail = nil
		return true
	})
	raw := []byte("Subject: x\n\ny")
	ev := Convert(raw, Options{Classifiers: []Classifier{vandal}, Hostname: "h"})
	if !utf8.ValidString(ev.Title) || !utf8.ValidString(ev.Body) || ev.Type() != "system-mail" || ev.Mail == nil || !bytes.Equal(ev.Mail.Raw, raw) {
		t.Errorf("invariants broken: %+v", ev)
	}
}

func TestOptionDefaults(t *testing.T) {
	before := time.Now()
	ev := Convert([]byte("Subject: x\n\ny"), Options{})
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(ev.ID) {
		t.Errorf("ID = %q, want a new UUID", ev.ID)
	}
	if ev.Timestamp.Before(before) || time.Since(ev.Timestamp) > time.Minute {
		t.Errorf("Timestamp = %v, want now", ev.Timestamp)
	}
	if h := ev.Fields["hostname"]; h == "" || strings.Contains(h, ".") {
		t.Errorf("hostname = %q, want this host's short name", h)
	}
	if ev2 := Convert([]byte("Subject: x\n\ny"), Options{}); ev2.ID == ev.ID {
		t.Error("two conversions got the same ID")
	}
}

// TestStructure covers MIME shapes the sample mails do not.
func TestStructure(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		body     string
		bodyType string
		atts     []Attachment
	}{
		{"no content type is plain text", "Subject: s\n\nhello\n\n\n", "hello", "text/plain", nil},
		{"top-level text/x-log is the body", "Content-Type: text/x-log\n\nlog line", "log line", "text/plain", nil},
		{"top-level text with a file name is still the body",
			"Content-Type: text/plain; name=out.txt\nContent-Disposition: attachment\n\nreport", "report", "text/plain", nil},
		{"top-level non-text is an attachment",
			"Content-Type: application/json\n\n{\"a\":1}", "", "",
			[]Attachment{{"", "application/json", 7}}},
		{"alternative prefers plain even when second",
			"Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/html\n\n<p>html</p>\n--b\nContent-Type: text/plain\n\nplain\n--b--\n",
			"plain", "text/plain", nil},
		{"alternative with related html",
			"Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: multipart/related; boundary=r\n\n--r\nContent-Type: text/html\n\n<p>only <i>html</i></p>\n--r\nContent-Type: image/png\nContent-Transfer-Encoding: base64\nContent-Disposition: inline; filename=logo.png\n\niVBORw0KGgo=\n--r--\n--b--\n",
			"only html", "text/html", []Attachment{{"logo.png", "image/png", 8}}},
		{"mixed: first text part wins, inline text after it ignored",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\nContent-Type: text/plain\n\nsecond\n--b--\n",
			"first", "text/plain", nil},
		{"mixed: attachment text is not the body",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nattached\n--b\nContent-Type: text/plain\n\nreal body\n--b--\n",
			"real body", "text/plain", []Attachment{{"a.txt", "text/plain", 8}}},
		{"RFC 2047 and RFC 2231 file names",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nsee files\n--b\nContent-Type: application/pdf; name=\"=?utf-8?q?Pr=C3=BCfung.pdf?=\"\n\nPDF\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.bin\n\nBIN\n--b--\n",
			"see files", "text/plain",
			[]Attachment{{"Prüfung.pdf", "application/pdf", 3}, {"résumé.bin", "application/octet-stream", 3}}},
		{"quoted-printable attachment size",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b\nContent-Type: application/x-foo\nContent-Transfer-Encoding: quoted-printable\n\na=3Db=\nc\n--b--\n",
			"x", "text/plain", []Attachment{{"", "application/x-foo", 4}}},
		{"message/rfc822 part is listed",
			"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n\nDelivery failed.\n--b\nContent-Type: message/delivery-status\n\nStatus: 5.1.1\n--b\nContent-Type: message/rfc822\n\nSubject: orig\n\nhi\n--b--\n",
			"Delivery failed.", "text/plain",
			[]Attachment{{"", "message/delivery-status", 13}, {"", "message/rfc822", 17}}},
		{"multipart without boundary parameter",
			"Content-Type: multipart/mixed\n\n--xyz\nContent-Type: text/plain\n\nguessed\n--xyz--\n",
			"guessed", "text/plain", nil},
		{"multipart with no parts is shown as text",
			"Content-Type: multipart/mixed; boundary=b\n\nno delimiter here\n",
			"no delimiter here", "text/plain", nil},
		{"html charset from meta",
			"Content-Type: text/html\n\n<html><head><meta charset=\"iso-8859-1\"></head><body>Gr\xfc\xdfe</body></html>",
			"Grüße", "text/html", nil},
		{"unknown transfer encoding passes through",
			"Content-Type: text/plain\nContent-Transfer-Encoding: x-gzip64\n\nas is", "as is", "text/plain", nil},
		{"text/calendar beside the body is not an attachment",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\n\ninvite\n--b\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\n--b--\n",
			"invite", "text/plain", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Parse([]byte(tc.raw))
			if m.Body != tc.body || m.BodyType != tc.bodyType {
				t.Errorf("body = %q (%s), want %q (%s)", m.Body, m.BodyType, tc.body, tc.bodyType)
			}
			if fmt.Sprint(m.Attachments) != fmt.Sprint(tc.atts) {
				t.Errorf("attachments = %+v, want %+v", m.Attachments, tc.atts)
			}
		})
	}
}

func TestHeaderAccess(t *testing.T) {
	m := Parse([]byte("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nX-Cron-Env: <A=1>\nX-Cron-Env: <B=2>\nTo: a@x\nTo: b@y\nCc:\n\nbody"))
	if got := m.Header.Get("subject"); got != "Grüße" {
		t.Errorf("Get(subject) = %q", got)
	}
	if got := m.Header.Raw("Subject"); got != "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" {
		t.Errorf("Raw(Subject) = %q", got)
	}
	if got := m.Header.Values("x-cron-env"); fmt.Sprint(got) != "[<A=1> <B=2>]" {
		t.Errorf("Values(X-Cron-Env) = %q", got)
	}
	if m.To != "a@x, b@y" {
		t.Errorf("To = %q", m.To)
	}
	if !m.Header.Has("Cc") || m.Header.Has("Bcc") || m.Header.Get("Bcc") != "" || m.Header.Values("Bcc") != nil {
		t.Error("Has/Get wrong for present-but-empty and absent fields")
	}
	if m.Header.Len() != 6 {
		t.Errorf("Len = %d, want 6", m.Header.Len())
	}
}

func TestAttachmentListCapped(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("Subject: many\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nsee attachments\n")
	for i := 0; i < 150; i++ {
		fmt.Fprintf(&sb, "--b\nContent-Type: image/png; name=img%03d.png\n\nPNG\n", i)
	}
	sb.WriteString("--b--\n")
	ev := Convert([]byte(sb.String()), goldenOptions())
	if !strings.Contains(ev.Body, "- img099.png (image/png, 3 bytes)\n- ... and 50 more") || strings.Contains(ev.Body, "img100") {
		t.Errorf("attachment list not capped as expected:\n%s", ev.Body[len(ev.Body)-200:])
	}
}

func TestBodyCap(t *testing.T) {
	line := strings.Repeat("é", MaxBodyBytes) // 2 MiB of two-byte characters
	ev := Convert([]byte("Subject: big\nContent-Type: text/plain; charset=utf-8\n\n"+line+"\n"), goldenOptions())
	want := fmt.Sprintf("\n[... %d bytes cut here ...]\n", MaxBodyBytes)
	i := strings.Index(ev.Body, want)
	if i < 0 {
		t.Fatalf("body has no note %q", want)
	}
	if i != MaxBodyBytes/2 || len(ev.Body)-i-len(want) != MaxBodyBytes/2 || !utf8.ValidString(ev.Body) {
		t.Errorf("kept %d bytes before and %d after the note (valid UTF-8: %v), want %d each",
			i, len(ev.Body)-i-len(want), utf8.ValidString(ev.Body), MaxBodyBytes/2)
	}
	if len(ev.Mail.Raw) < 2*MaxBodyBytes {
		t.Error("raw mail was cut too")
	}
}

// TestBodyKeepsHeadAndTail: a long log keeps its first and its last lines,
// cut at line ends, with the note between them counting what was cut.
func TestBodyKeepsHeadAndTail(t *testing.T) {
	for _, size := range []int{MaxBodyBytes + 100, 3 * MaxBodyBytes, 9 * MaxBodyBytes} {
		var sb strings.Builder
		for i := 0; sb.Len() < size; i++ {
			fmt.Fprintf(&sb, "line %07d: rsync: sending incremental file list\n", i)
		}
		body := sb.String() + "FATAL: backup target unreachable, job failed"
		for _, cte := range []string{"8bit", "base64"} {
			enc := body
			if cte == "base64" {
				enc = base64.StdEncoding.EncodeToString([]byte(body))
			}
			ev := Convert([]byte("Subject: log\nContent-Transfer-Encoding: "+cte+"\n\n"+enc), goldenOptions())
			if !strings.HasPrefix(ev.Body, "line 0000000: rsync") || !strings.HasSuffix(ev.Body, "\nFATAL: backup target unreachable, job failed") {
				t.Fatalf("%d bytes %s: head or tail lost: %q ... %q", size, cte, ev.Body[:40], ev.Body[len(ev.Body)-60:])
			}
			i := strings.Index(ev.Body, "\n[... ")
			var cut int
			if _, err := fmt.Sscanf(ev.Body[i:], "\n[... %d bytes cut here ...]\n", &cut); err != nil {
				t.Fatalf("%d bytes %s: note: %v", size, cte, err)
			}
			note := fmt.Sprintf("\n[... %d bytes cut here ...]\n", cut)
			head, tail := ev.Body[:i+1], ev.Body[i+len(note):]
			if !strings.HasSuffix(head, "\n") || !strings.HasPrefix(tail, "line ") {
				t.Errorf("%d bytes %s: not cut at line ends: %q | %q", size, cte, head[len(head)-20:], tail[:20])
			}
			if len(head)+cut+len(tail) != len(body) || !strings.HasPrefix(body, head) || !strings.HasSuffix(body, tail) {
				t.Errorf("%d bytes %s: kept %d + cut %d + kept %d != %d", size, cte, len(head), cut, len(tail), len(body))
			}
			if len(ev.Body) > MaxBodyBytes+64 {
				t.Errorf("%d bytes %s: body is %d bytes", size, cte, len(ev.Body))
			}
		}
	}
}

// TestHugeInputsAreFast feeds pathological shapes and bounds the time each
// takes: no hang, nothing quadratic. The bound is generous for -race on a
// busy 2-core machine; the real figures are in the benchmarks.
func TestHugeInputsAreFast(t *testing.T) {
	const mb = 1 << 20
	// The HTML parser is ~50 times slower under the race detector: there,
	// the HTML shapes shrink and the bound grows, keeping the package fast.
	limit, html := time.Second, func(n int) int { return n }
	if raceEnabled {
		limit, html = 10*time.Second, func(n int) int { return n / 8 }
	}
	oneLine := strings.Repeat("x", mb)
	tests := []struct {
		name  string
		raw   string
		check func(t *testing.T, ev *event.Event)
	}{
		{"1 MB body line", "Subject: long\n\n" + oneLine, func(t *testing.T, ev *event.Event) {
			if len(ev.Body) != mb {
				t.Errorf("body length %d, want %d", len(ev.Body), mb)
			}
		}},
		{"1 MB line, no header", oneLine, nil},
		{"1 MB subject", "Subject: " + oneLine + "\n\nbody", func(t *testing.T, ev *event.Event) {
			if len(ev.Title) != maxHeaderValue || ev.Body != "body" {
				t.Errorf("title length %d, body %q", len(ev.Title), ev.Body)
			}
		}},
		{"1 MB of encoded-word starts", "Subject: " + strings.Repeat("=?a?q?", mb/6) + "\n\nx", nil},
		{"1 MB header field name", strings.Repeat("X", mb) + ": v\n\nx", nil},
		{"100k header fields", strings.Repeat("X-A: b\n", 100000) + "\nx", nil},
		{"1 MB base64 line", "Content-Transfer-Encoding: base64\n\n" + strings.Repeat("QUJD", mb/4), func(t *testing.T, ev *event.Event) {
			if !strings.HasPrefix(ev.Body, "ABCABC") {
				t.Errorf("body starts %q", ev.Body[:10])
			}
		}},
		{"1 MB quoted-printable of '='", "Content-Transfer-Encoding: quoted-printable\n\n" + strings.Repeat("= ", mb/2), nil},
		{"1 MB preamble line", "Content-Type: multipart/mixed; boundary=b\n\n" + oneLine + "\n--b\n\nafter\n--b--", func(t *testing.T, ev *event.Event) {
			if ev.Body != "after" {
				t.Errorf("body %q", ev.Body[:min(len(ev.Body), 40)])
			}
		}},
		{"many parts", "Content-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\n\nx\n", 200000), nil},
		{"deep multipart nesting", deepMultipart(5000), nil},
		{"deep HTML nesting", "Content-Type: text/html\n\n" + strings.Repeat("<b>", html(250<<10)/3) + "x", func(t *testing.T, ev *event.Event) {
			if ev.Body != "x" {
				t.Errorf("body %q", ev.Body[:min(len(ev.Body), 40)])
			}
		}},
		{"deep HTML tables", "Content-Type: text/html\n\n" + strings.Repeat("<table><tr><td>", html(20000)) + "x", nil},
		{"HTML paragraphs", "Content-Type: text/html\n\n" + strings.Repeat("<p>para <a href=\"http://x/\">link</a></p>\n", html(250<<10)/40), nil},
		// Worst case for x/net/html: text runs between dropped tags.
		{"HTML stray table cells", "Content-Type: text/html\n\n" + strings.Repeat("<tr><td>a</td><td>b</td></tr>", html(250<<10)/30), nil},
		{"5 MB HTML", "Content-Type: text/html\n\n" + strings.Repeat("<td>cell</td>", 5*mb/13), func(t *testing.T, ev *event.Event) {
			if !strings.HasPrefix(ev.Body, "cell cell cell") {
				t.Errorf("body %q", ev.Body[:min(len(ev.Body), 40)])
			}
		}},
		{"1 MB of CR", strings.Repeat("\r", mb), nil},
		{"1 MB of NUL", "Subject: n\n\n" + strings.Repeat("\x00", mb), func(t *testing.T, ev *event.Event) {
			if ev.Body != "" {
				t.Errorf("body %q", ev.Body[:10])
			}
		}},
		{"1 MB of 8-bit", "Subject: n\n\n" + strings.Repeat("\xe9", mb), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			ev := Convert([]byte(tc.raw), goldenOptions())
			if d := time.Since(start); d > limit {
				t.Errorf("took %v, want less than %v", d, limit)
			}
			checkEvent(t, []byte(tc.raw), ev)
			if tc.check != nil {
				tc.check(t, ev)
			}
		})
	}
}

func deepMultipart(depth int) string {
	var sb strings.Builder
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&sb, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	sb.WriteString("\ndeep text\n")
	return sb.String()
}

// checkEvent asserts what holds for every conversion.
func checkEvent(t testing.TB, raw []byte, ev *event.Event) {
	t.Helper()
	if ev == nil {
		t.Fatal("Convert returned nil")
	}
	if !utf8.ValidString(ev.Title) || !utf8.ValidString(ev.Body) {
		t.Errorf("invalid UTF-8 in title or body")
	}
	for k, v := range ev.Fields {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Errorf("invalid UTF-8 in field %q", k)
		}
	}
	if strings.ContainsRune(ev.Title, 0) || strings.ContainsRune(ev.Body, 0) {
		t.Error("NUL in title or body")
	}
	if strings.ContainsAny(ev.Title, "\r\n") {
		t.Errorf("line break in title %q", ev.Title)
	}
	if strings.ContainsRune(ev.Body, '\r') {
		t.Error("CR in body")
	}
	if ev.Type() != TypeSystemMail || ev.Fields["hostname"] == "" || ev.Severity != event.Unknown {
		t.Errorf("defaults missing: %v %v", ev.Severity, ev.Fields)
	}
	if ev.Mail == nil || !bytes.Equal(ev.Mail.Raw, raw) {
		t.Error("raw mail not kept")
	}
	if _, err := ev.MarshalJSON(); err != nil {
		t.Errorf("event does not marshal: %v", err)
	}
}

func TestStripTags(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<p>a</p><p>b</p>", "a\nb"},
		{"<style>p{color:red}</style><script>x()</script>text", "text"},
		{"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
		{"x &amp; y&nbsp;z<br>next", "x & y\u00a0z\nnext"},
		{"<p>a</p>\n\n\n<p>b", "a\n\nb"},
		{"unclosed <b", "unclosed"},
		{"<STYLE>p{}</STYLE>İ<b>x</b>", "İx"}, // non-ASCII keeps offsets aligned
	}
	for _, tc := range tests {
		if got := stripTags(tc.in); got != tc.want {
			t.Errorf("stripTags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A huge text body is decoded only as far as the body cap needs, and the
// note still counts everything that was left out.
func TestHugeBodyIsBoundedAndCounted(t *testing.T) {
	line := strings.Repeat("0123456789abcdef", 4) + "\n"
	body := strings.Repeat(line, 20<<20/len(line))
	raw := []byte("From: a@b\nSubject: big\n\n" + body)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	ev := Convert(raw, Options{ID: "x", Hostname: "h"})
	runtime.ReadMemStats(&m1)
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 30<<20 {
		t.Errorf("converting a 20 MB body allocated %d MB", alloc>>20)
	}
	i := strings.Index(ev.Body, "\n[... ")
	if i < 0 {
		t.Fatalf("no note in %d bytes", len(ev.Body))
	}
	var cut int
	if _, err := fmt.Sscanf(ev.Body[i:], "\n[... %d bytes cut here ...]", &cut); err != nil {
		t.Fatal(err)
	}
	// The note's first line end is the head's own last one.
	kept := len(ev.Body) - len(fmt.Sprintf("\n[... %d bytes cut here ...]\n", cut)) + 1
	if want := len(strings.TrimRight(body, "\n")); kept+cut != want {
		t.Errorf("kept %d + cut %d bytes, want %d in all", kept, cut, want)
	}
}

// A classifier stuck on its input is abandoned after the timeout and
// logged; the next one still runs and the mail still becomes an event.
func TestClassifierTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stuck := namedClassifier{"stuck", func(m *Message, ev *event.Event) bool {
		ev.SetField("type", "stuck")
		<-release
		return true
	}}
	next := namedClassifier{"next", func(m *Message, ev *event.Event) bool {
		ev.SetField("type", "next")
		return true
	}}
	var logBuf bytes.Buffer
	opt := goldenOptions()
	opt.Classifiers = []Classifier{stuck, next}
	opt.ClassifierTimeout = 50 * time.Millisecond
	opt.Log = slog.New(slog.NewTextHandler(&logBuf, nil))
	start := time.Now()
	ev, res := ConvertClassified([]byte("Subject: x\n\nbody"), opt)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("conversion took %v", d)
	}
	if ev.Type() != "next" || res.Classifier != "next" || fmt.Sprint(res.Skipped) != "[stuck]" || fmt.Sprint(res.Set) != "map[type:next]" {
		t.Errorf("type %q, classification %+v", ev.Type(), res)
	}
	if !strings.Contains(logBuf.String(), "mail classifier timed out; skipped") || !strings.Contains(logBuf.String(), "classifier=stuck") {
		t.Errorf("log: %s", logBuf.String())
	}
}

type namedClassifier struct {
	name string
	f    func(m *Message, ev *event.Event) bool
}

func (n namedClassifier) Name() string                              { return n.name }
func (n namedClassifier) Classify(m *Message, ev *event.Event) bool { return n.f(m, ev) }
