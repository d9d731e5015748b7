package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"herald/internal/spool"
	"herald/internal/submit"
	"herald/internal/sysexits"
)

// The shim hands a message to the running daemon over its submission
// socket (internal/submit) and falls back to writing the maildrop itself
// whenever the daemon does not store it: no daemon, a stale socket, a
// refusal for now, no answer. The rule that keeps this from submitting
// twice or losing anything (docs/submit.md):
//
//   - The message is read into memory before it is sent, so the shim can
//     still write it into the maildrop whatever happens to the connection.
//   - The daemon stores only a complete request, and answers only once it
//     is durable: an answer "stored" ends the shim (exit 0); an answer "not
//     stored" or a request not sent in full leaves nothing in the daemon.
//   - A request sent in full without an answer may or may not be stored.
//     The maildrop entry then carries the request's submission ID, and the
//     daemon makes the same event of both entries (spool.Entry.EventID),
//     which is delivered once.
//
// A message larger than socketMax goes to the maildrop directly, without
// being held in memory.

// socketMax is the largest message sent over the socket.
const socketMax = 4 << 20

// The socket's time limits: connecting is immediate or fails at once (a
// unix socket); the answer comes once the daemon's spool write is durable.
// Variables for tests.
var (
	connectTimeout = time.Second
	answerTimeout  = 15 * time.Second
)

// stateDir is the state directory that holds the socket.
func stateDir() string {
	if s := os.Getenv("HERALD_STATE_DIR"); s != "" {
		return s
	}
	return DefaultStateDir
}

// submitSocket tries the daemon's socket with the message in body. It
// returns the spool ID and how it was queued when the daemon stored it; an
// exit status (code >= 0) when the shim must stop (input unreadable,
// message too large); otherwise (id "", code -1) the maildrop is to be
// written with rest, which yields the whole message again, and env, whose
// Submission is set when the daemon may have stored the message.
func submitSocket(prog string, o Options, env *spool.Envelope, body io.Reader, limit int64, stderr io.Writer) (id, via string, code int, rest io.Reader) {
	bound := int64(socketMax)
	if limit > 0 && limit < bound {
		bound = limit
	}
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, body, bound+1)
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "%s: error reading input: %v\n", prog, err)
		return "", "", sysexits.IOErr, nil
	}
	if n > bound {
		if bound == limit {
			fmt.Fprintf(stderr, "%s: message too large: the limit is %d bytes\n", prog, limit)
			return "", "", sysexits.DataErr, nil
		}
		// Too large to hold: streamed into the maildrop.
		return "", "", -1, io.MultiReader(&buf, body)
	}
	req := submit.Request{Kind: env.Kind, Source: env.Source, Submission: spool.NewSubmission(),
		From: env.From, Recipients: env.Recipients}
	id, err = submit.Send(submit.SocketPath(stateDir()), req, buf.Bytes(), connectTimeout, answerTimeout)
	if err == nil {
		return id, "the daemon", -1, nil
	}
	var re *submit.RefusedError
	if errors.As(err, &re) && re.Final() {
		fmt.Fprintf(stderr, "%s: %s\n", prog, re.Text)
		return "", "", sysexits.DataErr, nil
	}
	if !errors.Is(err, submit.ErrNoDaemon) {
		env.Submission = req.Submission
	}
	if o.Verbose {
		fmt.Fprintf(stderr, "%s: %v; writing the maildrop\n", prog, err)
	}
	return "", "", -1, bytes.NewReader(buf.Bytes())
}
