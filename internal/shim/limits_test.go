package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/spool"
	"herald/internal/sysexits"
)

// A header block over maxHeaderBytes is kept as body text, but never with
// its Bcc fields: before the overflow, folded across it, after it, and as
// one field longer than the whole limit. Every other line stays.
func TestBccRemovedFromOversizedHeader(t *testing.T) {
	filler := "X-Filler: " + strings.Repeat("f", 1000) + "\n"
	var b strings.Builder
	b.WriteString("Subject: big header\nBcc: early@secret.test\nTo: root\n")
	for b.Len() < maxHeaderBytes-500 {
		b.WriteString(filler)
	}
	b.WriteString("Bcc: folded@secret.test,\n " + strings.Repeat("g", 1000) + "@secret.test\n") // crosses the limit
	for range 20 {
		b.WriteString(filler)
	}
	b.WriteString("BCC: late@secret.test\nX-Kept: yes\n")
	b.WriteString("bcc: " + strings.Repeat("h", maxHeaderBytes+1000) + "@secret.test\n\tcontinued@secret.test\n")
	b.WriteString("X-After: kept\n\nbody line\nBcc: in the body stays\n")

	for _, args := range [][]string{{"sendmail", "root"}, {"sendmail", "-t"}, {"sendmail", "-i", "root"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			s, _ := testSpool(t)
			r := run(t, args, strings.NewReader(b.String()))
			if r.code != sysexits.OK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			_, msg := onlyEntry(t, s)
			if strings.Contains(msg, "secret.test") || strings.Contains(msg, "hhhh") || strings.Contains(msg, "gggg") {
				i := strings.Index(msg, "secret.test")
				t.Fatalf("a Bcc survived near %q", msg[max(0, i-60):min(len(msg), i+20)])
			}
			for _, want := range []string{"Subject: big header\n", "To: root\n", "X-Kept: yes\n", "X-After: kept\n\nbody line\nBcc: in the body stays\n"} {
				if !strings.Contains(msg, want) {
					t.Errorf("lost %q", want)
				}
			}
			if n := strings.Count(msg, filler); n < (maxHeaderBytes-500)/len(filler)+20-1 {
				t.Errorf("only %d filler fields kept", n)
			}
		})
	}
}

// The shim must not acknowledge what the daemon's reader would quarantine.
// A 900 KB To: of "&" (-t) fits once the envelope is written unescaped; one
// whose JSON escaping exceeds the reader's envelope limit is refused with
// 65 and leaves nothing in the spool.
func TestEnvelopeTheReaderAccepts(t *testing.T) {
	s, state := testSpool(t)
	r := run(t, []string{"sendmail", "-t"}, strings.NewReader("To: "+strings.Repeat("&", 900<<10)+"\nSubject: amp\n\nx\n"))
	if r.code != sysexits.OK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	e, _ := onlyEntry(t, s)
	if len(e.Env.Recipients) != 1 || len(e.Env.Recipients[0]) != 900<<10 {
		t.Fatalf("recipients read back: %d", len(e.Env.Recipients))
	}
	if err := s.Remove(e); err != nil {
		t.Fatal(err)
	}

	// An invalid UTF-8 byte becomes U+FFFD, three bytes: 2 MiB of arguments
	// (the kernel's usual ARG_MAX, 128 KiB each) are over 4 MiB.
	args := []string{"sendmail"}
	for i := range 16 {
		args = append(args, string(rune('a'+i))+strings.Repeat("\xff", 128<<10-1))
	}
	r = run(t, args, strings.NewReader("Subject: ctl\n\nx\n"))
	if r.code != sysexits.DataErr || !strings.Contains(r.stderr, "envelope too large") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, d := range []string{"maildrop", "quarantine"} {
		if names, _ := os.ReadDir(filepath.Join(state, "spool", d)); len(names) != 0 {
			t.Errorf("%s holds %d files", d, len(names))
		}
	}
}

// Below the reserve the daemon published, the shim exits 75 (try again
// later) and writes nothing.
func TestShimRespectsReserve(t *testing.T) {
	s, state := testSpool(t)
	s.SetLimits(spool.Limits{MinFree: 1 << 62})
	r := run(t, []string{"sendmail", "root"}, strings.NewReader("Subject: x\n\nx\n"))
	if r.code != sysexits.TempFail || !strings.Contains(r.stderr, "reserve") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if names, _ := os.ReadDir(filepath.Join(state, "spool", "maildrop")); len(names) != 0 {
		t.Fatalf("maildrop holds %d files", len(names))
	}
	s.SetLimits(spool.Limits{MinFree: 1 << 20})
	if r := run(t, []string{"sendmail", "root"}, strings.NewReader("Subject: x\n\nx\n")); r.code != sysexits.OK {
		t.Fatalf("with space: exit %d: %s", r.code, r.stderr)
	}
}

// A header block over maxHeaderBytes keeps the fields up to the bound as
// the header: sendmail -t still reads its recipients there and the subject
// stays the subject; the rest of the block follows as body text.
func TestOversizedHeaderKeepsItsFirstFields(t *testing.T) {
	filler := "X-Filler: " + strings.Repeat("f", 1000) + "\n"
	var b strings.Builder
	b.WriteString("To: boss@example.com\nSubject: big header\nCc: ops@example.com\n")
	for b.Len() < maxHeaderBytes+50000 {
		b.WriteString(filler)
	}
	b.WriteString("To: late@example.com\n\nthe body\n")
	s, _ := testSpool(t)
	r := run(t, []string{"sendmail", "-t", "-i"}, strings.NewReader(b.String()))
	if r.code != sysexits.OK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	e, msg := onlyEntry(t, s)
	if got := strings.Join(e.Env.Recipients, " "); got != "boss@example.com ops@example.com" {
		t.Errorf("recipients %q, want those of the header's first fields", got)
	}
	head, body, ok := strings.Cut(msg, "\n\n")
	if !ok || !strings.Contains(head, "Subject: big header\n") || strings.Contains(head, "late@example.com") {
		t.Fatalf("header block of the stored message is not the first fields (%d bytes)", len(head))
	}
	if len(head) > maxHeaderBytes+1000 || !strings.HasPrefix(body, "X-Filler: ") || !strings.HasSuffix(body, "To: late@example.com\n\nthe body\n") {
		t.Errorf("the rest of the block is not the body: header %d bytes, body starts %.20q", len(head), body)
	}
}
