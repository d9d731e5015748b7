package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSubmissionIDs(t *testing.T) {
	a, b := NewSubmission(), NewSubmission()
	if !ValidSubmission(a) || !ValidSubmission(b) || a == b {
		t.Fatalf("submission IDs %q %q", a, b)
	}
	for _, bad := range []string{"", strings.ToUpper(a), a[:31], a + "0", "g" + a[1:], "18ed6006735d0154-903e38b6"} {
		if ValidSubmission(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The shim's socket entry and its maildrop fallback for the same message
// (same submission ID, same uid) make one event ID; anything else keeps
// events apart.
func TestEventIDOfSubmissions(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test gives maildrop entries to other owners and must run as root")
	}
	s, state, _ := newSpool(t)
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	sub, other := NewSubmission(), NewSubmission()
	uid := func(n int) *int { return &n }
	incoming := func(peer *int, submission string) Entry {
		t.Helper()
		env := mailEnv("a@h", "root")
		env.PeerUID, env.Submission = peer, submission
		if _, err := s.Submit(env, strings.NewReader("x"), 0); err != nil {
			t.Fatal(err)
		}
		return newest(t, s)
	}
	maildrop := func(owner int, submission string) Entry {
		t.Helper()
		env := mailEnv("a@h", "root")
		env.Submission = submission
		env.PeerUID = uid(0) // dropped by the reader: only the file owner counts
		id, err := d.Submit(env, strings.NewReader("x"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(s.maildrop, id), owner, owner); err != nil {
			t.Fatal(err)
		}
		return newest(t, s)
	}

	sock := incoming(uid(1000), sub)
	if u, ok := sock.Submitter(); !ok || u != 1000 {
		t.Fatalf("socket entry submitter %d %v", u, ok)
	}
	drop := maildrop(1000, sub)
	if u, ok := drop.Submitter(); !ok || u != 1000 || drop.Env.PeerUID != nil {
		t.Fatalf("maildrop entry submitter %d %v, peer-uid %v", u, ok, drop.Env.PeerUID)
	}
	if sock.EventID() != drop.EventID() || sock.EventID() == sock.ID || len(sock.EventID()) != 32 {
		t.Fatalf("same submission, same uid: event IDs %q and %q (entries %s, %s)", sock.EventID(), drop.EventID(), sock.ID, drop.ID)
	}
	for name, e := range map[string]Entry{
		"another uid's maildrop entry with the same submission ID": maildrop(1001, sub),
		"the same uid, another submission":                         incoming(uid(1000), other),
		"root claiming the submission":                             incoming(uid(0), sub),
	} {
		if e.EventID() == sock.EventID() {
			t.Errorf("%s: same event ID %s", name, e.EventID())
		}
	}
	// Without a valid submission ID, or without a known submitter, the
	// event ID is the entry ID.
	for name, e := range map[string]Entry{
		"no submission":      incoming(uid(1000), ""),
		"invalid submission": maildrop(1000, "not-an-id"),
		"no submitter":       incoming(nil, sub),
	} {
		if e.EventID() != e.ID {
			t.Errorf("%s: event ID %s, want the entry ID %s", name, e.EventID(), e.ID)
		}
	}
}

// newest returns the most recent pending entry.
func newest(t *testing.T, s *Spool) Entry {
	t.Helper()
	es, err := s.Pending()
	if err != nil || len(es) == 0 {
		t.Fatalf("pending: %v %v", es, err)
	}
	return es[len(es)-1]
}

// The per-uid limit counts a user's entries from the submission socket as
// well as from the maildrop, and the socket applies it (UserOK).
func TestUserOKCountsSocketEntries(t *testing.T) {
	s, _, _ := newSpool(t)
	s.SetLimits(Limits{MaxPerUID: 1000})
	peer := 1000
	for _, env := range []Envelope{
		{Kind: KindMail, Source: "sendmail", PeerUID: &peer},
		{Kind: KindEvent, Source: "notify", PeerUID: &peer},
		{Kind: KindMail, Source: "smtp", PeerUID: &peer}, // SMTP has limits of its own
		{Kind: KindMail, Source: "sendmail"},             // the daemon's own: no submitter
	} {
		if _, err := s.Submit(env, strings.NewReader(strings.Repeat("x", 600)), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UserOK(1000); err != nil {
		t.Fatalf("before a pass: %v", err)
	}
	es, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	s.NoteUsage(es)
	data, _ := os.ReadFile(filepath.Join(s.Dir(), limitsName))
	if !strings.Contains(string(data), "uid 1000 1200\n") || strings.Count(string(data), "\nuid ") != 1 {
		t.Fatalf("published:\n%s", data)
	}
	if err := s.UserOK(1000); !errors.Is(err, ErrUserLimit) || !IsTemporary(err) {
		t.Fatalf("uid 1000 over its limit: %v", err)
	}
	for _, uid := range []int{0, 1001} {
		if err := s.UserOK(uid); err != nil {
			t.Errorf("uid %d: %v", uid, err)
		}
	}
	s.NoteUsage(nil)
	if err := s.UserOK(1000); err != nil {
		t.Fatalf("after the pass: %v", err)
	}
}
