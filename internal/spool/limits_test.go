package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envelopeOfSize returns an envelope whose JSON line is exactly n bytes.
func envelopeOfSize(t *testing.T, n int) Envelope {
	t.Helper()
	env := Envelope{Kind: KindMail, Source: "sendmail", From: "a@b", Recipients: []string{""},
		Received: time.Date(2026, 12, 2, 5, 0, 0, 123456789, time.UTC)}
	head, _, err := encodeHead(&env)
	if err != nil {
		t.Fatal(err)
	}
	base := len(head) - len(magic) - 1
	env.Recipients[0] = strings.Repeat("&", n-base) // one byte each, unescaped
	return env
}

// Writer and reader agree on the envelope limit, at the boundary: what
// Submit accepts, Pending reads back; one byte more is refused by Submit
// (ErrEnvelopeTooLarge, a kind of ErrTooLarge) and leaves nothing behind.
// Before, a 900 KB To: of "&" (six bytes each in HTML-escaped JSON) was
// accepted and then quarantined by the reader.
func TestEnvelopeLimitAgrees(t *testing.T) {
	state := t.TempDir()
	s, err := Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	fits := envelopeOfSize(t, maxEnvelopeLine)
	id, err := d.Submit(fits, strings.NewReader("Subject: x\n\nx\n"), 0)
	if err != nil {
		t.Fatalf("an envelope of exactly the limit: %v", err)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 1 || es[0].ID != id || es[0].Env.Recipients[0] != fits.Recipients[0] {
		t.Fatalf("read back: %d entries, err %v", len(es), err)
	}
	if err := s.Remove(es[0]); err != nil {
		t.Fatal(err)
	}

	over := envelopeOfSize(t, maxEnvelopeLine+1)
	_, err = d.Submit(over, strings.NewReader("Subject: x\n\nx\n"), 0)
	if !errors.Is(err, ErrEnvelopeTooLarge) || !errors.Is(err, ErrTooLarge) || IsTemporary(err) {
		t.Fatalf("one byte over: err = %v", err)
	}
	names, _ := os.ReadDir(filepath.Join(state, "spool", "maildrop"))
	if len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}

	// A reader gets the same bound for a file written by hand.
	p := filepath.Join(state, "spool", "incoming", NewID(fits.Received))
	line := `{"kind":"mail","source":"smtp","rcpt":["` + strings.Repeat("x", maxEnvelopeLine) + `"]}`
	if err := os.WriteFile(p, []byte(magic+line+"\nbody"), 0o600); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.Pending(); len(es) != 0 {
		t.Fatal("an envelope line over the limit was read")
	}
	if q, _ := os.ReadDir(filepath.Join(state, "spool", "quarantine")); len(q) != 1 {
		t.Fatalf("quarantine holds %d files, want 1", len(q))
	}
}
