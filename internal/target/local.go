package target

// Local is implemented by targets that deliver on this machine without
// waiting for anything remote (file, mbox, journal, a sendmail target that
// only fills local mailboxes). The delivery queue gives them slots of
// their own, so that they never wait behind remote targets that hang.
type Local interface {
	IsLocal() bool
}

// IsLocal reports whether t declares that it delivers locally.
func IsLocal(t Target) bool {
	l, ok := t.(Local)
	return ok && l.IsLocal()
}
