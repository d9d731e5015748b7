package shim

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/safeio"
	"herald/internal/spool"
	"herald/internal/sysexits"
)

// testSpool makes a spool in a temporary state directory and points the
// shim at it through HERALD_STATE_DIR.
func testSpool(t *testing.T) (*spool.Spool, string) {
	t.Helper()
	state := t.TempDir()
	s, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HERALD_STATE_DIR", state)
	t.Setenv("HERALD_MAX_MESSAGE_SIZE", "")
	return s, state
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, argv []string, stdin io.Reader) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(argv, stdin, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// onlyEntry returns the one pending entry and its message.
func onlyEntry(t *testing.T, s *spool.Spool) (spool.Entry, string) {
	t.Helper()
	es, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("%d entries pending, want 1", len(es))
	}
	b, err := s.ReadAll(es[0])
	if err != nil {
		t.Fatal(err)
	}
	return es[0], string(b)
}

// splitMessage returns the header block (without the empty line) and body.
func splitMessage(t *testing.T, msg string) (string, string) {
	t.Helper()
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := strings.Index(msg, sep); i >= 0 {
			return msg[:i+len(sep)/2], msg[i+len(sep):]
		}
	}
	return msg, ""
}

func headerValues(head, name string) []string {
	var vals []string
	for _, l := range strings.Split(strings.ReplaceAll(head, "\r\n", "\n"), "\n") {
		if n, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

func TestDeliverCron(t *testing.T) {
	s, _ := testSpool(t)
	msg := "From: root (Cron Daemon)\nTo: a@x,b@y\nSubject: Cron <root@vm> ./job\n" +
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n" +
		"X-Cron-Env: <SHELL=/bin/sh>\n\njob output\n.\nafter the dot, ünïcode\nno final newline"
	r := run(t, []string{"/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "a@x,b@y"}, strings.NewReader(msg))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	e, stored := onlyEntry(t, s)
	if !reflect.DeepEqual(e.Env.Recipients, []string{"a@x", "b@y"}) {
		t.Errorf("recipients %q", e.Env.Recipients)
	}
	if e.Env.Source != "sendmail" || e.Env.Kind != spool.KindMail || e.Env.UID != os.Getuid() {
		t.Errorf("envelope %+v", e.Env)
	}
	head, body := splitMessage(t, stored)
	if body != "job output\n.\nafter the dot, ünïcode\nno final newline" {
		t.Errorf("body changed: %q", body)
	}
	if v := headerValues(head, "From"); len(v) != 1 || v[0] != "root (Cron Daemon)" {
		t.Errorf("From %q: the caller's From must be kept", v)
	}
	if len(headerValues(head, "Date")) != 1 || len(headerValues(head, "Message-ID")) != 1 {
		t.Errorf("Date/Message-ID not added:\n%s", head)
	}
	if !strings.HasPrefix(stored, "From: root (Cron Daemon)\nTo: a@x,b@y\n") {
		t.Errorf("original header order changed:\n%s", head)
	}
}

func TestDots(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		in   string
		body string
	}{
		{"lone dot ends without -i", []string{"r"}, "Subject: x\n\nline\n.\nlost\n", "line\n"},
		{"lone dot CRLF ends without -i", []string{"r"}, "Subject: x\r\n\r\nline\r\n.\r\nlost\r\n", "line\r\n"},
		{"dot at EOF ends", []string{"r"}, "Subject: x\n\nline\n.", "line\n"},
		{"double dot kept (no unstuffing)", []string{"r"}, "Subject: x\n\n..\n...x\n.x\n", "..\n...x\n.x\n"},
		{"dot with text is not the end", []string{"r"}, "Subject: x\n\n. \n.a\n", ". \n.a\n"},
		{"-i reads to EOF", []string{"-i", "r"}, "Subject: x\n\nline\n.\nkept\n..\n", "line\n.\nkept\n..\n"},
		{"-oi reads to EOF", []string{"-oi", "r"}, "Subject: x\n\n.\n", ".\n"},
		{"-o i reads to EOF", []string{"-o", "i", "r"}, "Subject: x\n\n.\n", ".\n"},
		{"-t alone stops at the dot (logwatch, mdadm)", []string{"-t"}, "To: r\n\nreport\n.\nlost\n", "report\n"},
		{"dot in the header block ends the message", []string{"r"}, "Subject: x\n.\nTo: lost\n\nlost\n", ""},
		{"NUL and 8-bit kept", []string{"-i", "r"}, "Subject: x\n\na\x00b\xff\xfe\n", "a\x00b\xff\xfe\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := testSpool(t)
			r := run(t, append([]string{"sendmail"}, c.args...), strings.NewReader(c.in))
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			_, stored := onlyEntry(t, s)
			_, body := splitMessage(t, stored)
			if body != c.body {
				t.Fatalf("body %q, want %q\nstored:\n%s", body, c.body, stored)
			}
		})
	}
}

func TestLongLineAndDot(t *testing.T) {
	s, _ := testSpool(t)
	long := strings.Repeat("x", 200<<10)
	// A "." at the end of a line longer than the read buffer is not a
	// lone dot; the real one follows.
	in := "Subject: long\n\n" + long + ".\nnext\n.\nlost\n"
	if r := run(t, []string{"sendmail", "r"}, strings.NewReader(in)); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	_, stored := onlyEntry(t, s)
	if _, body := splitMessage(t, stored); body != long+".\nnext\n" {
		t.Fatalf("body of %d bytes, want %d", len(body), len(long)+7)
	}
}

func TestExtractRecipients(t *testing.T) {
	s, _ := testSpool(t)
	msg := "To: Alice <alice@x>, root,\n\t\"Bob, Jr.\" <bob@y>\n" +
		"Cc: ops@example.org (Ops team)\nbcc: secret@z\nBcc: undisclosed: s2@z, s3@z;\n" +
		"Subject: report\n\nbody\n"
	r := run(t, []string{"sendmail", "-i", "-t", "extra@w", "alice@x"}, strings.NewReader(msg))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	e, stored := onlyEntry(t, s)
	want := []string{"extra@w", "alice@x", "root", "bob@y", "ops@example.org", "secret@z", "s2@z", "s3@z"}
	if !reflect.DeepEqual(e.Env.Recipients, want) {
		t.Errorf("recipients\n got %q\nwant %q", e.Env.Recipients, want)
	}
	head, body := splitMessage(t, stored)
	if strings.Contains(strings.ToLower(stored), "bcc") || strings.Contains(stored, "secret@z") || strings.Contains(stored, "s2@z") {
		t.Errorf("Bcc left in the stored message:\n%s", stored)
	}
	if !strings.Contains(head, "To: Alice <alice@x>, root,\n\t\"Bob, Jr.\" <bob@y>\nCc: ops@example.org (Ops team)\nSubject: report\n") {
		t.Errorf("other headers changed:\n%s", head)
	}
	if body != "body\n" {
		t.Errorf("body %q", body)
	}
}

func TestExtractRecipientsNoneFound(t *testing.T) {
	s, _ := testSpool(t)
	r := run(t, []string{"sendmail", "-t"}, strings.NewReader("Subject: lonely\n\nhi\n"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "no recipient") {
		t.Errorf("no warning on stderr: %q", r.stderr)
	}
	if e, _ := onlyEntry(t, s); len(e.Env.Recipients) != 0 {
		t.Errorf("recipients %q", e.Env.Recipients)
	}
}

func TestBccRemovedWithoutT(t *testing.T) {
	s, _ := testSpool(t)
	r := run(t, []string{"sendmail", "-i", "a@x"}, strings.NewReader("Bcc: hidden@x\nSubject: s\n\nb\n"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	e, stored := onlyEntry(t, s)
	if strings.Contains(stored, "hidden@x") {
		t.Errorf("Bcc kept:\n%s", stored)
	}
	if !reflect.DeepEqual(e.Env.Recipients, []string{"a@x"}) {
		t.Errorf("recipients %q: without -t the header is not a recipient source", e.Env.Recipients)
	}
}

func TestAddedHeaders(t *testing.T) {
	host := hostname()
	for _, c := range []struct {
		name     string
		args     []string
		in       string
		fromWant string // "" = check only that it is the login @ host
		envFrom  string
		nl       string
	}{
		{"all missing, -F and -f", []string{"-F", "Cron Daemon", "-f", "cron@x", "r"}, "Subject: s\n\nb\n", `"Cron Daemon" <cron@x>`, "cron@x", "\n"},
		{"non-ASCII name", []string{"-F", "Dämon", "-f", "d@x", "r"}, "Subject: s\n\nb\n", "=?utf-8?q?D=C3=A4mon?= <d@x>", "d@x", "\n"},
		{"quotes in name", []string{"-F", `a "b" \c`, "-f", "d@x", "r"}, "Subject: s\n\nb\n", `"a \"b\" \\c" <d@x>`, "d@x", "\n"},
		{"CRLF message gets CRLF headers", []string{"-f", "d@x", "r"}, "Subject: s\r\n\r\nb\r\n", "", "d@x", "\r\n"},
		{"no header at all", []string{"-f", "d@x", "r"}, "just a body line\nand another\n", "", "d@x", "\n"},
		{"headers only, no newline", []string{"-f", "d@x", "r"}, "Subject: s", "", "d@x", "\n"},
		{"empty input", []string{"-f", "d@x", "r"}, "", "", "d@x", "\n"},
		{"null sender", []string{"-f", "<>", "r"}, "Subject: s\n\nb\n", "", "", "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := testSpool(t)
			r := run(t, append([]string{"sendmail"}, c.args...), strings.NewReader(c.in))
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			e, stored := onlyEntry(t, s)
			if e.Env.From != c.envFrom {
				t.Errorf("envelope sender %q, want %q", e.Env.From, c.envFrom)
			}
			head, _ := splitMessage(t, stored)
			from := headerValues(head, "From")
			date := headerValues(head, "Date")
			id := headerValues(head, "Message-ID")
			if len(from) != 1 || len(date) != 1 || len(id) != 1 {
				t.Fatalf("want one From, Date, Message-ID each:\n%s", stored)
			}
			if c.fromWant != "" && from[0] != c.fromWant {
				t.Errorf("From %q, want %q", from[0], c.fromWant)
			}
			if c.fromWant == "" && !strings.Contains(from[0], "@"+host) && !strings.Contains(from[0], "d@x") {
				t.Errorf("From %q is neither -f nor login@%s", from[0], host)
			}
			if d, err := time.Parse(time.RFC1123Z, date[0]); err != nil || time.Since(d) > time.Minute {
				t.Errorf("Date %q: %v", date[0], err)
			}
			if !strings.HasPrefix(id[0], "<") || !strings.HasSuffix(id[0], "@"+host+">") {
				t.Errorf("Message-ID %q", id[0])
			}
			if c.nl == "\r\n" && strings.Count(stored, "\r\n") != strings.Count(stored, "\n") {
				t.Errorf("mixed line endings in a CRLF message:\n%q", stored)
			}
			if c.in == "just a body line\nand another\n" && !strings.HasSuffix(stored, "\n\njust a body line\nand another\n") {
				t.Errorf("body not kept after the added headers:\n%q", stored)
			}
		})
	}
}

func TestExistingHeadersKept(t *testing.T) {
	s, _ := testSpool(t)
	in := "Message-Id: <orig@h>\nDATE: Sat, 21 Nov 2026 12:19:12 +0000 (UTC)\nfrom: (Bacula) <bacula@x>\nFrom: second@x\nSubject: s\n\nb\n"
	if r := run(t, []string{"sendmail", "-F", "Ignored", "r"}, strings.NewReader(in)); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	_, stored := onlyEntry(t, s)
	want := "Message-Id: <orig@h>\nDATE: Sat, 21 Nov 2026 12:19:12 +0000 (UTC)\nfrom: (Bacula) <bacula@x>\nSubject: s\n\nb\n"
	if stored != want {
		t.Fatalf("stored\n%q\nwant\n%q", stored, want)
	}
}

func TestUserIdentity(t *testing.T) {
	s, _ := testSpool(t)
	if r := run(t, []string{"sendmail", "r"}, strings.NewReader("Subject: s\n\nb\n")); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	e, _ := onlyEntry(t, s)
	who := whoami(MailName())
	if e.Env.From != who.login+"@"+hostname() {
		t.Errorf("envelope sender %q, want %s@%s", e.Env.From, who.login, hostname())
	}
	if os.Getuid() == 0 && who.login != "root" {
		t.Errorf("login of uid 0 is %q", who.login)
	}
}

func TestExitCodes(t *testing.T) {
	msg := "Subject: s\n\nbody\n"
	for _, c := range []struct {
		name   string
		args   []string
		stdin  io.Reader
		setup  func(t *testing.T, state string)
		code   int
		stderr string
	}{
		{"accepted", []string{"r"}, strings.NewReader(msg), nil, sysexits.OK, ""},
		{"unknown option", []string{"-z", "r"}, strings.NewReader(msg), nil, sysexits.Usage, "sendmail: invalid option -- 'z'\nusage:"},
		{"no recipients", nil, strings.NewReader(msg), nil, sysexits.Usage, "no recipients"},
		{"-bv", []string{"-bv", "r"}, strings.NewReader(msg), nil, sysexits.Usage, "not supported"},
		{"state dir missing", []string{"r"}, strings.NewReader(msg), func(t *testing.T, state string) {
			t.Setenv("HERALD_STATE_DIR", filepath.Join(state, "missing"))
		}, sysexits.TempFail, "cannot queue message"},
		{"spool unwritable", []string{"r"}, strings.NewReader(msg), func(t *testing.T, state string) {
			failAt(t, safeio.StepCreate, syscall.EACCES)
		}, sysexits.TempFail, "permission denied"},
		{"disk full", []string{"r"}, strings.NewReader(msg), func(t *testing.T, state string) {
			failAt(t, safeio.StepWrite, syscall.ENOSPC)
		}, sysexits.TempFail, "no space left"},
		{"read-only file system", []string{"r"}, strings.NewReader(msg), func(t *testing.T, state string) {
			failAt(t, safeio.StepCreate, syscall.EROFS)
		}, sysexits.TempFail, "read-only"},
		{"fsync fails", []string{"r"}, strings.NewReader(msg), func(t *testing.T, state string) {
			failAt(t, safeio.StepSync, syscall.EIO)
		}, sysexits.TempFail, "input/output error"},
		{"stdin unreadable", []string{"r"}, io.MultiReader(strings.NewReader("Subject: s\n\npart"), errReader{}), nil, sysexits.IOErr, "error reading input"},
		{"stdin unreadable in the header", []string{"r"}, errReader{}, nil, sysexits.IOErr, "error reading input"},
		{"too large", []string{"r"}, strings.NewReader(msg + strings.Repeat("x", 500)), func(t *testing.T, state string) {
			t.Setenv("HERALD_MAX_MESSAGE_SIZE", "300")
		}, sysexits.DataErr, "message too large"},
		{"bad size setting", []string{"r"}, strings.NewReader(msg), func(t *testing.T, state string) {
			t.Setenv("HERALD_MAX_MESSAGE_SIZE", "lots")
		}, sysexits.Config, "HERALD_MAX_MESSAGE_SIZE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, state := testSpool(t)
			if c.setup != nil {
				c.setup(t, state)
			}
			r := run(t, append([]string{"sendmail"}, c.args...), c.stdin)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, c.code, r.stderr)
			}
			if !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, c.stderr)
			}
			safeio.FailHook = nil
			es, err := s.Pending()
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[c.code == 0]; len(es) != want {
				t.Fatalf("%d entries pending, want %d", len(es), want)
			}
			if c.code != 0 {
				for _, d := range []string{"maildrop", "incoming"} {
					if names, _ := os.ReadDir(filepath.Join(state, "spool", d)); len(names) != 0 {
						t.Fatalf("leftovers in %s after a failure: %v", d, names)
					}
				}
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, syscall.EIO }

func failAt(t *testing.T, step safeio.Step, errno syscall.Errno) {
	t.Helper()
	safeio.FailHook = func(s safeio.Step, path string) error {
		if s == step {
			return errno
		}
		return nil
	}
	t.Cleanup(func() { safeio.FailHook = nil })
}

func TestAliasesQueueAndSMTPModes(t *testing.T) {
	s, state := testSpool(t)
	cfg := t.TempDir()
	t.Setenv("HERALD_CONFIG_DIR", cfg)
	if r := run(t, []string{"/usr/sbin/newaliases"}, strings.NewReader("")); r.code != 0 || r.stdout != "/etc/aliases: no aliases file; local recipients are delivered as they are\n" && !strings.HasSuffix(r.stdout, " aliases\n") {
		t.Errorf("newaliases without herald.cfg: %+v", r)
	}
	af := filepath.Join(cfg, "aliases")
	if err := os.WriteFile(filepath.Join(cfg, "herald.cfg"), []byte("aliases-file "+af+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(af, []byte("postmaster: root\nroot: admin@example.com,\n  ops@example.com\nlog: |/usr/bin/logger\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "postmaster: root\nroot: admin@example.com, ops@example.com\nlog: |/usr/bin/logger\n" + af + ": 3 aliases\n"
	for _, argv := range [][]string{{"/usr/sbin/newaliases"}, {"sendmail", "-bi"}, {"sendmail", "-I"}} {
		r := run(t, argv, strings.NewReader(""))
		if r.code != 0 || r.stdout != want || r.stderr != af+":4: warning: alias log: command entry |/usr/bin/logger is skipped: herald never runs commands or writes files for an alias\n" {
			t.Errorf("%v: %+v", argv, r)
		}
	}
	if err := os.WriteFile(af, []byte("a: b\nbad line\nl1: l2\nl2: l1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, []string{"/usr/sbin/newaliases"}, strings.NewReader("")); r.code != 65 ||
		!strings.Contains(r.stderr, af+":2: expected NAME: ADDRESS") || !strings.Contains(r.stderr, af+":3: alias loop: l1 → l2 → l1") {
		t.Errorf("newaliases with broken lines: %+v", r)
	}
	if r := run(t, []string{"sendmail", "-q"}, strings.NewReader("")); r.code != 0 {
		t.Errorf("-q: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(state, "spool", "maildrop", "kick")); err != nil {
		t.Errorf("-q left no kick marker: %v", err)
	}
	if !s.Kicked() {
		t.Error("the daemon does not see the kick")
	}

	old := ServeSMTP
	t.Cleanup(func() { ServeSMTP = old })
	ServeSMTP = nil
	if r := run(t, []string{"sendmail", "-bs"}, strings.NewReader("")); r.code != sysexits.Software {
		t.Errorf("-bs without a server: %+v", r)
	}
	var gotDrop *spool.Drop
	ServeSMTP = func(in io.Reader, out io.Writer, d *spool.Drop) int {
		gotDrop = d
		b, _ := io.ReadAll(in)
		_, _ = out.Write(append([]byte("echo "), b...))
		return 0
	}
	r := run(t, []string{"sendmail", "-bs"}, strings.NewReader("QUIT\r\n"))
	if r.code != 0 || r.stdout != "echo QUIT\r\n" || gotDrop == nil || gotDrop.Dir() != filepath.Join(state, "spool", "maildrop") {
		t.Errorf("-bs did not hand stdin/stdout and the maildrop to ServeSMTP: %+v", r)
	}
}

func TestMailq(t *testing.T) {
	_, _ = testSpool(t)
	for _, argv := range [][]string{{"mailq"}, {"sendmail", "-bp"}} {
		if r := run(t, argv, strings.NewReader("")); r.code != 0 || r.stdout != "Mail queue is empty\n" {
			t.Errorf("%q on an empty queue: %+v", argv, r)
		}
	}
	for _, rc := range []string{"a@x", "b@y"} {
		if r := run(t, []string{"sendmail", "-f", "cron@vm", rc, "c@z"}, strings.NewReader("Subject: s\n\n"+strings.Repeat("x", 2000)+"\n")); r.code != 0 {
			t.Fatalf("submit: %+v", r)
		}
	}
	r := run(t, []string{"/usr/bin/mailq"}, strings.NewReader(""))
	if r.code != 0 {
		t.Fatalf("mailq: %+v", r)
	}
	lines := strings.Split(r.stdout, "\n")
	if !strings.HasPrefix(lines[0], "-Queue ID-") || !strings.Contains(r.stdout, "cron@vm (uid ") ||
		!strings.Contains(r.stdout, "\n"+strings.Repeat(" ", 56)+"a@x\n") || !strings.HasSuffix(r.stdout, "-- 5 Kbytes in 2 Requests.\n") {
		t.Errorf("mailq output:\n%s", r.stdout)
	}
}

func TestPrivilegeDropWithoutSetID(t *testing.T) {
	// Not set-id: nothing to drop, and dropping must not fail.
	if privileged() {
		t.Fatal("the test process runs set-id")
	}
	if err := dropPrivileges(); err != nil {
		t.Fatal(err)
	}
}

// FuzzHeaders: header parsing and fixing never panic, and the fixed header
// block holds exactly one From, Date and Message-ID; Bcc never survives.
func FuzzHeaders(f *testing.F) {
	for _, s := range []string{
		"From: root (Cron Daemon)\nTo: a@x,b@y\nSubject: x\n\nbody\n",
		"To: A <a@x>, root,\n\t\"B, Jr.\" <b@y>\nBcc: s@z\n\nb",
		"Subject: s\r\nFrom: a\r\nFrom: b\r\nDate: x\r\nDate: y\r\n\r\nbody\r\n",
		"no header\n\n",
		"\n\nbody",
		"From : obsolete\nMessage-ID:\n <x@y>\n",
		" leading continuation\nTo: x\n",
		"To: undisclosed-recipients:;\nCc: (comment) a@b (c), \"q,\\\" x\" <d@e>\n\n",
		".\n", "Subject: x\n.\n", "",
	} {
		f.Add([]byte(s), true, false)
	}
	f.Fuzz(func(t *testing.T, in []byte, extract, dots bool) {
		h, err := readHeaderBlock(newMsgReader(bytes.NewReader(in), dots))
		if err != nil {
			t.Fatalf("readHeaderBlock: %v", err)
		}
		out, rcpts := h.fix(fixes{extract: extract, from: "u@h", date: "Mon, 02 Jan 2006 15:04:05 -0700", msgID: "<i@h>"})
		for _, r := range rcpts {
			if r == "" {
				t.Fatalf("empty recipient from %q", in)
			}
		}
		// Re-read what would be stored and count.
		h2, err := readHeaderBlock(newMsgReader(bytes.NewReader(out), false))
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, f := range h2.fields {
			count[strings.ToLower(f.name)]++
		}
		if count["from"] != 1 || count["date"] != 1 || count["message-id"] != 1 || count["bcc"] != 0 {
			t.Fatalf("fixed header counts %v\nin  %q\nout %q", count, in, out)
		}
		if !dots && !bytes.HasSuffix(out, h.body) {
			t.Fatalf("body bytes lost")
		}
	})
}

func TestParseAddressList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"a@x", []string{"a@x"}},
		{"root", []string{"root"}},
		{"root, admin@x", []string{"root", "admin@x"}},
		{"Root User <root>", []string{"root"}},
		{"<a@x>,<b@y>", []string{"a@x", "b@y"}},
		{`"Doe, John" <j@x>, k@y`, []string{"j@x", "k@y"}},
		{"undisclosed-recipients:;", nil},
		{"team: a@x, b@y;, c@z", []string{"a@x", "b@y", "c@z"}},
		{"root (Cron Daemon)", []string{"root"}},
		{"a@x (comment, with comma), b", []string{"a@x", "b"}},
		{"  ", nil},
		{"=?utf-8?q?J=C3=B6rg?= <j@x>", []string{"j@x"}},
	} {
		if got := parseAddressList(c.in); !reflect.DeepEqual(got, c.want) && len(got)+len(c.want) > 0 {
			t.Errorf("parseAddressList(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHeaderOverflowBecomesBody(t *testing.T) {
	big := "X-Big: " + strings.Repeat("y", maxHeaderBytes) + "\nTo: lost@x\n\nbody\n"
	m := newMsgReader(strings.NewReader(big), true)
	h, err := readHeaderBlock(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.fields) != 0 {
		t.Fatalf("fields %d", len(h.fields))
	}
	head, rcpts := h.fix(fixes{extract: true, from: "u@h", date: "d", msgID: "<i@h>"})
	rest, err := io.ReadAll(h.tail(m))
	if err != nil {
		t.Fatal(err)
	}
	out := string(head) + string(rest)
	if len(rcpts) != 0 || !strings.HasPrefix(out, "From: u@h\nDate: d\nMessage-ID: <i@h>\n\nX-Big: yyy") || !strings.HasSuffix(out, "\nTo: lost@x\n\nbody\n") {
		t.Fatalf("out starts %q, ends %q", out[:80], out[len(out)-30:])
	}
}

func TestMsgReaderError(t *testing.T) {
	m := newMsgReader(io.MultiReader(strings.NewReader("abc\n"), errReader{}), true)
	b, err := io.ReadAll(m)
	if !errors.Is(err, syscall.EIO) || string(b) != "abc\n" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
}
