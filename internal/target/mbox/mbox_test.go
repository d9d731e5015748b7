package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/mailhdr"
	"herald/internal/target"
	"herald/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var fixedNow = time.Date(2025, 5, 23, 11, 59, 32, 0, time.UTC)

func newTarget(t testing.TB, path string) *Target {
	t.Helper()
	tg := New(path, "pve1.example.org")
	tg.now = func() time.Time { return fixedNow }
	return tg
}

// rawMail is a forwarded system mail with every escaping case: a leading
// mbox From_ line (stripped), From_ lines in the body at several quoting
// levels, lines that look alike but must stay, CRLF endings and no final
// newline.
const rawMail = "From root@pve1  Fri May 23 11:59:32 2025\r\n" +
	"From: root <root@pve1.example.org>\r\n" +
	"To: root@pve1.example.org\r\n" +
	"Subject: Cron <root@pve1> backup\r\n" +
	"\r\n" +
	"From here on, the job said:\r\n" +
	">From the log:\r\n" +
	">>From deeper\r\n" +
	"From:not a separator\r\n" +
	"Fromage\r\n" +
	" From indented\r\n" +
	"\r\n" +
	"From the end"

func mailEvent() *event.Event {
	return &event.Event{
		ID:        "3f2a1c9e-5b7d-4e8f-a1b2-c3d4e5f60718",
		Timestamp: fixedNow,
		Severity:  event.Unknown,
		Title:     "Cron <root@pve1> backup",
		Fields:    map[string]string{"type": "system-mail", "hostname": "pve1"},
		Mail:      &event.Mail{Raw: []byte(rawMail), From: "root@pve1.example.org", Recipients: []string{"root"}},
	}
}

func renderedEvent() *event.Event {
	return &event.Event{
		ID:        "0b9e8d7c-6a5f-4e3d-9c2b-1a0f9e8d7c6b",
		Timestamp: time.Date(2025, 5, 23, 13, 59, 32, 0, time.FixedZone("CEST", 2*3600)),
		Severity:  event.Error,
		Title:     "Sicherung fehlgeschlagen: VM 100 „web“ — Zeitüberschreitung beim Schreiben auf das Ziel pbs-offsite",
		Body:      "Backup job failed.\nFrom now on nothing is backed up.\n",
		Fields:    map[string]string{"type": "vzdump", "hostname": "pve1", "job-id": "backup-1"},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   *event.Event
	}{
		{"mail.mbox", mailEvent()},
		{"rendered.mbox", renderedEvent()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail", "root")
			tg := newTarget(t, path)
			if err := tg.Deliver(t.Context(), tc.ev); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, got)
		})
	}
}

func TestMailboxModesAndSeparation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	path := filepath.Join(dir, "root")
	tg := newTarget(t, path)
	if err := tg.Deliver(t.Context(), mailEvent()); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}

	// A mailbox whose last message was cut short (no final blank line): the
	// next message must still start after a blank line.
	if err := os.WriteFile(path, []byte("From x Fri May 23 11:59:32 2025\nSubject: cut\n\nhalf a li"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tg.Deliver(t.Context(), renderedEvent()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("half a li\n\nFrom MAILER-DAEMON ")) {
		t.Errorf("new message not separated from the torn one:\n%s", b)
	}
	if n := countMessages(t, b); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// countMessages counts From_ lines that follow a blank line (or start the file).
func countMessages(t *testing.T, b []byte) int {
	t.Helper()
	n := 0
	prevBlank := true
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if prevBlank && strings.HasPrefix(sc.Text(), "From ") {
			n++
		}
		prevBlank = sc.Text() == ""
	}
	return n
}

// splitMessages returns the messages of an mbox without their From_ lines
// and mboxrd escaping.
func splitMessages(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var msgs [][]byte
	prevBlank := true
	for _, line := range strings.SplitAfter(string(b), "\n") {
		content := strings.TrimSuffix(line, "\n")
		if prevBlank && strings.HasPrefix(content, "From ") {
			msgs = append(msgs, nil)
		} else if len(msgs) > 0 {
			if needsEscape([]byte(content)) {
				line = line[1:]
			}
			msgs[len(msgs)-1] = append(msgs[len(msgs)-1], line...)
		}
		prevBlank = content == ""
	}
	return msgs
}

func TestRenderedEventIsRFC5322(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	tg := newTarget(t, path)
	ev := renderedEvent()
	if err := tg.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msgs := splitMessages(t, b)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0]))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, msgs[0])
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if subject != ev.Title {
		t.Errorf("Subject decodes to %q, want %q", subject, ev.Title)
	}
	date, err := m.Header.Date()
	if err != nil || !date.Equal(ev.Timestamp) {
		t.Errorf("Date = %v, %v; want %v", date, err, ev.Timestamp)
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "herald@pve1.example.org" {
		t.Errorf("From = %v, %v", from, err)
	}
	for k, want := range map[string]string{
		"To":                        "root",
		"Message-Id":                "<" + ev.ID + "@pve1.example.org>",
		"X-Herald-Event":            ev.ID,
		"X-Herald-Severity":         "error",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "8bit",
		"Mime-Version":              "1.0",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for line := range strings.SplitSeq(string(msgs[0]), "\n") {
		if len(line) > 78 {
			t.Errorf("line longer than 78 characters: %q", line)
		}
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{ev.Body, "\n--\n", "hostname: pve1\n", "job-id: backup-1\n", "type: vzdump\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

func TestHeaderInjectionIsDefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	tg := newTarget(t, path)
	ev := renderedEvent()
	ev.Title = "hello\r\nBcc: victim@example.org"
	ev.ID = "id\nX-Evil: 1"
	ev.Mail = nil
	if err := tg.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	mev := mailEvent()
	mev.Mail.From = "a@b\nX-Evil: 1 <x>"
	if err := tg.Deliver(t.Context(), mev); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "X-Evil") {
			t.Errorf("injected header line %q", line)
		}
	}
	if ok, err := tg.Delivered(t.Context(), ev); err != nil || !ok {
		t.Errorf("Delivered(odd id) = %v, %v", ok, err)
	}
}

func TestDelivered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	tg := newTarget(t, path)
	ev := mailEvent()
	if ok, err := tg.Delivered(t.Context(), ev); err != nil || ok {
		t.Fatalf("missing mailbox: Delivered = %v, %v", ok, err)
	}
	// Another message that quotes the header line in its body is not ev.
	other := renderedEvent()
	other.Body = EventHeader + ": " + ev.ID + "\n"
	if err := tg.Deliver(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	if ok, err := tg.Delivered(t.Context(), ev); err != nil || ok {
		t.Fatalf("before delivery: Delivered = %v, %v; want false", ok, err)
	}
	if err := tg.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	// A line longer than the scanner's buffer, then a body line that looks
	// like our header right after a long line's continuation.
	long := renderedEvent()
	long.ID = "long"
	long.Body = strings.Repeat("x", 200<<10) + "\n\n" + EventHeader + ": never\n"
	if err := tg.Deliver(t.Context(), long); err != nil {
		t.Fatal(err)
	}
	if err := tg.Deliver(t.Context(), renderedEvent()); err != nil {
		t.Fatal(err)
	}
	if ok, err := tg.Delivered(t.Context(), &event.Event{ID: "never"}); err != nil || ok {
		t.Errorf("Delivered(never) = %v, %v; want false", ok, err)
	}
	for _, e := range []*event.Event{ev, other, long} {
		if ok, err := tg.Delivered(t.Context(), e); err != nil || !ok {
			t.Errorf("Delivered(%s) = %v, %v; want true", e.ID, ok, err)
		}
	}
}

func TestDeliveredIgnoresTornMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	tg := newTarget(t, path)
	ev := mailEvent()
	if err := tg.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A crash cut the message short: it must be delivered again.
	if err := os.WriteFile(path, b[:len(b)-20], 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := tg.Delivered(t.Context(), ev); err != nil || ok {
		t.Fatalf("torn message: Delivered = %v, %v; want false", ok, err)
	}
}

func TestFailedWriteIsTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root")
	tg := newTarget(t, path)
	if err := tg.Deliver(t.Context(), renderedEvent()); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ev := mailEvent()
	ev.Mail.Raw = bytes.Repeat([]byte("a long line of the message body\n"), 10000)
	tg.wrap = func(w io.Writer) io.Writer { return &testkit.FailAfter{W: w, Left: 100 << 10} }
	err = tg.Deliver(t.Context(), ev)
	if err == nil || !target.IsTemporary(err) {
		t.Fatalf("Deliver with a failing write = %v, want a temporary error", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("mailbox changed by a failed delivery: %d bytes before, %d after", len(before), len(after))
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind after a failure: %v", err)
	}
}

func TestSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "root")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := newTarget(t, path).Deliver(t.Context(), mailEvent()); err == nil {
		t.Fatal("delivered through a symlink")
	}
	if b, _ := os.ReadFile(victim); len(b) != 0 {
		t.Fatal("symlink target written")
	}
}

func TestFold(t *testing.T) {
	for _, in := range []string{
		"Subject: short",
		"Subject: " + strings.Repeat("word ", 40),
		"Subject: " + strings.Repeat("x", 200),
		"Subject: " + strings.Repeat("x", 100) + " tail and " + strings.Repeat("y", 90),
		"Subject: " + mime.QEncoding.Encode("utf-8", strings.Repeat("ü", 100)),
	} {
		out := fold(in)
		if unfolded := strings.ReplaceAll(out, "\n", ""); unfolded != in {
			t.Errorf("fold(%q) does not unfold back: %q", in, out)
		}
		for i, l := range strings.Split(out, "\n") {
			if i > 0 && !strings.HasPrefix(l, " ") {
				t.Errorf("continuation line %q does not start with white space", l)
			}
			if l == " " || l == "" {
				t.Errorf("empty continuation line in %q", out)
			}
		}
	}
}

// FuzzEntry writes an arbitrary mail as an mbox entry and checks that it
// is one message, that mboxrd unescaping gives the mail back (CRLF as LF),
// and that Delivered finds it and nothing else.
func FuzzEntry(f *testing.F) {
	f.Add([]byte(rawMail), "id-1", "root@host")
	f.Add([]byte("From x\n\nFrom y\n>From z\n"), "id-2", "")
	f.Add([]byte(""), "id-3", "a b")
	f.Add([]byte("\r\n\r\n\n"), "x", "<>")
	f.Fuzz(func(t *testing.T, raw []byte, id, from string) {
		if strings.ContainsAny(id, "\x00") {
			return
		}
		tg := New("unused", "h")
		tg.now = func() time.Time { return fixedNow }
		ev := &event.Event{ID: id, Mail: &event.Mail{Raw: raw, From: from}}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := tg.writeEntry(w, ev, fixedNow); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		out := buf.Bytes()
		msgs := splitMessages(t, out)
		if len(msgs) != 1 {
			t.Fatalf("%d messages from one entry:\n%q", len(msgs), out)
		}
		want := strings.ReplaceAll(string(mailhdr.StripFromLine(raw)), "\r\n", "\n")
		if want != "" && !strings.HasSuffix(want, "\n") {
			want = strings.TrimSuffix(want, "\r") + "\n"
		}
		got := string(msgs[0])
		hdr := "Return-Path: <" + safeAddr(from) + ">\n" + EventHeader + ": " + headerID(id) + "\n"
		if !strings.HasPrefix(got, hdr) {
			t.Fatalf("entry does not start with our headers: %q", got)
		}
		got = strings.TrimPrefix(got, hdr)
		if got != want+"\n" {
			t.Fatalf("unescaped entry differs:\n got %q\nwant %q", got, want+"\n")
		}
		ok, err := containsEvent(bytes.NewReader(out), headerID(id))
		if err != nil || !ok {
			t.Fatalf("containsEvent(own id) = %v, %v on %q", ok, err, out)
		}
	})
}

// FuzzContainsEvent feeds arbitrary mailboxes to the scanner: it must not
// fail on bytes.Reader input, and a match must be backed by the header line.
func FuzzContainsEvent(f *testing.F) {
	f.Add([]byte("From a b\nX-Herald-Event: x\n\nbody\n\n"), "x")
	f.Add([]byte("From a b\nX-Herald-Event: x\n\nbody"), "x")
	f.Add([]byte("X-Herald-Event: x\n\n"), "x")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		ok, err := containsEvent(bytes.NewReader(data), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok && !bytes.Contains(data, []byte("\n"+EventHeader+": "+id+"\n")) {
			t.Fatalf("containsEvent(%q, %q) = true without the header line", data, id)
		}
	})
}
