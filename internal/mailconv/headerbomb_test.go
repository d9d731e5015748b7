package mailconv

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// TestHeaderBomb: 1.4 million tiny header fields (the attack mail had 5.2
// million and took the daemon to 2.8 GB) convert with bounded memory; the excess is left out
// with a note, and the fields that make the event survive.
func TestHeaderBomb(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("From: attacker@example.com\r\n")
	for range 1_400_000 {
		b.WriteString("X: v\r\n")
	}
	b.WriteString("Subject: header bomb\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe body\r\n")
	raw := b.Bytes()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ev := Convert(raw, Options{ID: "bomb", Hostname: "h"})
	runtime.ReadMemStats(&after)

	// raw is 8.4 MB; conversion copies it about twice (line ends, From_
	// line). Unbounded, the parsed header alone took gigabytes.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("converting the header bomb allocated %d MB", alloc>>20)
	}
	if ev.Title != "header bomb" || ev.Fields[FieldFrom] != "attacker@example.com" {
		t.Errorf("title %q from %q: the fields after the cut were not kept", ev.Title, ev.Fields[FieldFrom])
	}
	if !strings.Contains(ev.Body, "1380001 more header fields") || !strings.HasSuffix(ev.Body, "the body") {
		t.Errorf("body does not say what was left out, or lost the text:\n%.300s", ev.Body)
	}
}

func TestCapHeader(t *testing.T) {
	small := []byte("A: 1\r\nB: 2\r\n")
	if got, d := capHeader(small); !bytes.Equal(got, small) || d.fields != 0 {
		t.Fatalf("a small header was changed: %q %+v", got, d)
	}
	var b bytes.Buffer
	for range maxHeaderFields {
		b.WriteString("X-Spam: 1\r\n\tcontinued\r\n")
	}
	b.WriteString("X-Over: 1\r\nSubject: s\r\n two\r\nSubject: second\r\n")
	got, d := capHeader(b.Bytes())
	if d.fields != 2 || d.bytes != len("X-Over: 1\r\nSubject: second\r\n") {
		t.Errorf("dropped %+v, want the X-Over field and the second Subject", d)
	}
	if !bytes.HasSuffix(got, []byte("\tcontinued\r\nSubject: s\r\n two\r\n")) {
		t.Errorf("the first Subject (with its continuation) was not kept after the cut: ...%q", got[max(0, len(got)-60):])
	}
}
