package spool

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

// Who submitted an entry, and the one event a shim submission becomes
// whichever door it came through (docs/submit.md).

// SubmissionLen is the length of a submission ID: 32 lowercase hex digits
// (128 random bits), chosen by the sendmail shim for each message.
const SubmissionLen = 32

// NewSubmission returns a fresh submission ID.
func NewSubmission() string {
	var b [SubmissionLen / 2]byte
	// crypto/rand.Read never fails on Linux (it aborts the program instead).
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidSubmission reports whether s has the form of a submission ID.
func ValidSubmission(s string) bool {
	if len(s) != SubmissionLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Submitter returns the uid that submitted e as the kernel reported it: the
// owner of a maildrop file, or the uid of a local client of the daemon's
// sockets (Envelope.PeerUID). ok is false when it is not known (a client on
// another host, the daemon's own submissions).
func (e Entry) Submitter() (uid int, ok bool) {
	switch {
	case e.FromMaildrop():
		return e.Env.UID, true
	case e.Env.PeerUID != nil:
		return *e.Env.PeerUID, true
	}
	return 0, false
}

// shimUID is Submitter for the entries the per-uid limit counts: those the
// shim or herald notify submitted, through the maildrop or the daemon's
// submission socket.
func (e Entry) shimUID() (int, bool) {
	if src := e.Env.Source; src != "sendmail" && src != "notify" {
		return 0, false
	}
	return e.Submitter()
}

// EventID returns the ID of the event made from e: the entry ID, or, for an
// entry that carries a valid submission ID and a known submitter, an ID
// derived from both. The shim sends a message over the daemon's socket and,
// when the answer is lost, writes the same message with the same
// submission ID into the maildrop: both entries then make the same event,
// which the delivery queue, noise control and the monitors take once, as
// they take an entry processed twice after a crash. The uid is part of the
// derivation, so one user cannot name another user's event.
func (e Entry) EventID() string {
	uid, ok := e.Submitter()
	if !ok || !ValidSubmission(e.Env.Submission) {
		return e.ID
	}
	h := sha256.Sum256([]byte("herald submission\x00" + strconv.Itoa(uid) + "\x00" + e.Env.Submission))
	return hex.EncodeToString(h[:16])
}

// UserOK reports ErrUserLimit (temporary) when uid, not root, has the
// per-uid limit or more waiting, as of the last ingest pass (NoteUsage):
// the daemon's submission socket applies the limit the shim applies to the
// maildrop.
func (s *Spool) UserOK(uid int) error {
	s.mu.Lock()
	max, used := s.limits.MaxPerUID, s.usage[uid]
	s.mu.Unlock()
	if uid != 0 && max > 0 && used >= max {
		return &spoolError{op: "per-user limit", err: fmt.Errorf("%w: uid %d has %d bytes waiting, limit %d", ErrUserLimit, uid, used, max)}
	}
	return nil
}
