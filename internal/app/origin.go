package app

import (
	"os/user"
	"strconv"

	"herald/internal/event"
	"herald/internal/spool"
)

// Who sent it (docs/origin.md). Every event gets the fields origin (the
// ingest path: smtp, sendmail, notify, http or push), and uid and user when
// the kernel tells who the submitter is: the owner of a maildrop file (the
// shim, herald notify, sendmail -bs), or the owner of a local client's
// socket for SMTP and HTTP (internal/peer). The daemon sets them after
// conversion, so a submitter's own fields of these names never survive:
// a matcher on origin or uid can tell a forged "vzdump error" from a
// genuine one.
const (
	FieldOrigin = "origin"
	FieldUID    = "uid"
	FieldUser   = "user"
)

// setOrigin sets ev's origin fields from its spool entry; lookup names a
// uid ("" when unknown).
func setOrigin(ev *event.Event, e spool.Entry, lookup func(uid int) string) {
	delete(ev.Fields, FieldUID)
	delete(ev.Fields, FieldUser)
	ev.SetField(FieldOrigin, e.Env.Source)
	uid, ok := e.Submitter()
	if !ok {
		return
	}
	ev.SetField(FieldUID, strconv.Itoa(uid))
	if name := lookup(uid); name != "" {
		ev.SetField(FieldUser, name)
	}
}

// userName returns the login name of uid, "" when it has none.
func userName(uid int) string {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return ""
	}
	return u.Username
}
