package smtp

// This file holds how a failed transaction becomes the target's error:
// classified for the queue and scrubbed of every form of the password.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"herald/internal/target"
)

// sendError is an error whose text has been scrubbed of the password. It
// deliberately does not unwrap to the raw cause, whose text may not be.
type sendError struct {
	msg string
	ctx error // context.Canceled or DeadlineExceeded, when that was the cause
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.ctx }

// fail classifies err from stage: SMTP replies by code, anything else
// (refused connection, reset, timeout, TLS failure) as temporary.
func (t *Target) fail(ctx context.Context, stage string, err error) error {
	code, reply := 0, ""
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		code, reply = se.Code, t.reply(se)
	}
	se2 := &sendError{}
	switch {
	case code == 0 && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)):
		// Our deadline (or the caller's) closed the connection, or go-smtp's
		// per-command backstop fired first: either way, time ran out.
		se2.ctx = ctx.Err()
		if se2.ctx == nil {
			se2.ctx = context.DeadlineExceeded
		}
		se2.msg = fmt.Sprintf("smtp %s: %s: %v (timeout %v)", t.addr, stage, se2.ctx, t.timeout)
	case reply != "":
		se2.msg = fmt.Sprintf("smtp %s: %s: server replied %s", t.addr, stage, reply)
	default:
		se2.msg = fmt.Sprintf("smtp %s: %s: %s", t.addr, stage, t.scrub(err.Error()))
	}
	classified := target.ClassifySMTP(code, se2)
	var te *target.Error
	if errors.As(classified, &te) {
		te.Reply = reply // the server's own words (or nothing), never our request
	}
	return classified
}

// reply formats a server reply on one line, scrubbed.
func (t *Target) reply(se *gosmtp.SMTPError) string {
	s := strconv.Itoa(se.Code)
	if ec := se.EnhancedCode; ec != (gosmtp.EnhancedCode{}) && ec != gosmtp.NoEnhancedCode {
		s += fmt.Sprintf(" %d.%d.%d", ec[0], ec[1], ec[2])
	}
	if se.Message != "" {
		s += " " + strings.ReplaceAll(strings.TrimSpace(se.Message), "\n", " / ")
	}
	return t.scrub(s)
}

// scrub removes every form of the password from s.
func (t *Target) scrub(s string) string {
	for _, sec := range t.secretForms() {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<secret>")
		}
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	return !slices.ContainsFunc(ss, func(s string) bool { return !isASCII(s) })
}
