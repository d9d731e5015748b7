// Package relay is herald's built-in relay target: it passes a mail that
// was addressed to remote recipients on to them through the smarthost,
// exactly as received (docs/mta.md). The daemon queues it for every mail
// whose envelope names a remote recipient while a relay is configured, so
// such mail gets the delivery queue's retries and dead letters like any
// notification; a mail that cannot be relayed becomes herald's
// delivery-failed event, never a bounce.
package relay

import (
	"context"
	"errors"
	"fmt"

	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/smtp"
)

// Name is the relay target's name in the delivery queue. The configuration
// refuses a target of this name (it is reserved).
const Name = "herald-relay"

// Sender sends one message; *smtp.Target's Send is it.
type Sender interface {
	Send(ctx context.Context, from string, rcpts []string, msg []byte) error
	String() string
}

// Target relays ev.Mail as-is to its remote envelope recipients.
type Target struct {
	send Sender
	// isLocal tells local recipients apart: they are the notification's,
	// not the relay's.
	isLocal func(rcpt string) bool
	// mailName qualifies a bare envelope sender (root → root@MAILNAME).
	mailName string
}

// New returns the relay target sending through s.
func New(s Sender, isLocal func(string) bool, mailName string) *Target {
	return &Target{send: s, isLocal: isLocal, mailName: mailName}
}

// String names the smarthost.
func (t *Target) String() string { return "relay via " + t.send.String() }

// Remote returns the recipients of ev the relay sends to.
func (t *Target) Remote(ev *event.Event) []string {
	if ev.Mail == nil {
		return nil
	}
	var out []string
	for _, r := range ev.Mail.Recipients {
		if !t.isLocal(r) {
			out = append(out, r)
		}
	}
	return out
}

// Deliver sends the raw mail of ev to its remote recipients. The envelope
// sender is kept (qualified when bare); a null sender stays null.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	if ev.Mail == nil || len(ev.Mail.Raw) == 0 {
		return target.Permanent(errors.New("relay: the event has no mail to relay"))
	}
	rcpts := t.Remote(ev)
	if len(rcpts) == 0 {
		return target.Permanent(errors.New("relay: the mail has no remote recipients"))
	}
	if err := t.send.Send(ctx, smtp.Qualify(ev.Mail.From, t.mailName), rcpts, ev.Mail.Raw); err != nil {
		return fmt.Errorf("relay to %v: %w", rcpts, err)
	}
	return nil
}
