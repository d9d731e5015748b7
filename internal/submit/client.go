package submit

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrNoDaemon reports that the socket could not be reached (no daemon, a
// stale socket file, no permission): nothing was sent.
var ErrNoDaemon = errors.New("submit: the daemon's socket does not answer")

// RefusedError is the daemon's answer that it did not store the message.
// Status StatusDataErr is final (the message or its envelope is too
// large); any other status means "not kept, try another way".
type RefusedError struct {
	Status byte
	Text   string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("submit: the daemon refused the message (status %d): %s", e.Status, e.Text)
}

// Final reports whether no other way of submitting can succeed.
func (e *RefusedError) Final() bool { return e.Status == StatusDataErr }

// UnansweredError reports a request the daemon got in full but did not
// answer: it may or may not have stored it. The shim's maildrop fallback
// carries the same submission ID, so the daemon makes one event of both
// (spool.Entry.EventID).
type UnansweredError struct{ Err error }

func (e *UnansweredError) Error() string {
	return "submit: no answer from the daemon: " + e.Err.Error()
}
func (e *UnansweredError) Unwrap() error { return e.Err }

// Send submits one message over the socket at path and returns the spool
// entry ID once the daemon has stored it durably. connectTimeout bounds
// the connection (a unix socket connects at once or not at all); timeout
// bounds sending the message and waiting for the answer. Errors:
// ErrNoDaemon (nothing sent), *RefusedError (the daemon answered that it
// did not store it), *UnansweredError (sent in full, no answer), or
// another error (not sent in full: the daemon cannot have stored it).
func Send(path string, req Request, body []byte, connectTimeout, timeout time.Duration) (string, error) {
	head, err := EncodeRequest(req, int64(len(body)))
	if err != nil {
		return "", err
	}
	c, err := net.DialTimeout("unix", path, connectTimeout)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoDaemon, err)
	}
	defer c.Close() // the answer is read; nothing to lose
	_ = c.SetDeadline(time.Now().Add(timeout))
	bufs := net.Buffers{head, body}
	if _, werr := bufs.WriteTo(c); werr != nil {
		// Not all of the request reached the daemon, which stores only a
		// complete one. It may have answered early (a bad request): read
		// what is there.
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if st, text, rerr := ReadReply(c); rerr == nil && st != StatusOK {
			return "", &RefusedError{Status: st, Text: text}
		}
		return "", fmt.Errorf("submit: sending the message: %w", werr)
	}
	st, text, err := ReadReply(c)
	if err != nil {
		return "", &UnansweredError{Err: err}
	}
	if st != StatusOK {
		return "", &RefusedError{Status: st, Text: text}
	}
	return text, nil
}
