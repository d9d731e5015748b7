package target

import (
	"context"
	"fmt"

	"herald/internal/event"
)

// Recipients resolves a mail target's recipients for one event (static
// list, per-event mailto-field, aliases; internal/recipients.Lookup). off
// reports that an account's warnings are switched off: an empty list is
// then no error but nobody to mail. An error says by Temporary() whether to
// retry (a directory that is down) or not (a person without an address).
type Recipients func(ctx context.Context, ev *event.Event) (to []string, off bool, err error)

// ResolveRecipients runs r (nil: static is the list) and checks every
// address with check. The error is a classified *Error naming the
// recipients as the cause.
func ResolveRecipients(ctx context.Context, r Recipients, static []string, ev *event.Event, check func(string) error) (to []string, off bool, err error) {
	if r == nil {
		return static, false, nil
	}
	to, off, err = r(ctx, ev)
	if err != nil {
		e := fmt.Errorf("recipients: %w", err)
		if IsTemporary(err) {
			return nil, false, Temporary(e, 0)
		}
		return nil, false, Permanent(e)
	}
	for _, a := range to {
		if cerr := check(a); cerr != nil {
			return nil, false, Permanent(fmt.Errorf("recipients: %w", cerr))
		}
	}
	return to, off, nil
}
