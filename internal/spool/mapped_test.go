package spool

import (
	"bytes"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// submitBig submits a message of n bytes and returns its entry.
func submitBig(t *testing.T, s *Spool, n int) (Entry, []byte) {
	t.Helper()
	msg := []byte("Subject: big\r\n\r\n" + strings.Repeat("x", n))
	if _, err := s.Submit(mailEnv("a@b", "root"), bytes.NewReader(msg), int64(len(msg))+1); err != nil {
		t.Fatal(err)
	}
	entries, err := s.Pending()
	if err != nil || len(entries) != 1 {
		t.Fatalf("pending %v %v", entries, err)
	}
	return entries[0], msg
}

// Map shows the message exactly as ReadAll reads it, Open reads the same
// bytes from the file, and Close invalidates both.
func TestMapIsTheMessage(t *testing.T) {
	s, _, _ := newSpool(t)
	e, msg := submitBig(t, s, MapMin)
	m, err := s.Map(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Bytes, msg) {
		t.Fatalf("mapped %d bytes, want the %d of the message", len(m.Bytes), len(msg))
	}
	r, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open read %d bytes (%v), want the %d of the message", len(got), err, len(msg))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Bytes != nil {
		t.Error("Bytes still set after Close")
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := m.Open(); err == nil {
		t.Error("Open after Close succeeded")
	}
}

// An entry that changed size since it was listed is not mapped.
func TestMapRefusesAChangedEntry(t *testing.T) {
	s, _, _ := newSpool(t)
	e, _ := submitBig(t, s, 4096)
	if err := os.Truncate(e.path, e.off+10); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Map(e); err == nil {
		_ = m.Close()
		t.Fatal("mapped an entry shorter than listed")
	}
}

// faultSink keeps the compiler from dropping the read of a mapped byte.
var faultSink byte

// A maildrop file belongs to its submitter, who can truncate it while the
// daemon has it mapped. Reading the vanished pages then raises SIGBUS; with
// debug.SetPanicOnFault (as the daemon's pick-up sets it) that is a panic
// the pick-up recovers from, not a crash.
func TestTruncatedUnderTheMappingPanics(t *testing.T) {
	s, _, _ := newSpool(t)
	e, _ := submitBig(t, s, 1<<20)
	m, err := s.Map(e)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.Truncate(e.path, 0); err != nil {
		t.Fatal(err)
	}
	var recovered any
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { recovered = recover() }()
		faultSink = m.Bytes[len(m.Bytes)-1]
	}()
	if recovered == nil {
		t.Fatal("reading a truncated mapping did not fault")
	}
	t.Logf("recovered: %v", recovered)
}
