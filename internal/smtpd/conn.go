package smtpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// conn sits between go-smtp and the network for every session, whatever the
// listener. It does what go-smtp does not:
//
//   - Input framing. conn knows whether the next input byte belongs to a
//     command line, to message data (after go-smtp sent 354, until CRLF.CRLF)
//     or to a BDAT chunk, by following the same rules as go-smtp (frame.go).
//     Only command lines are limited in length (Options.MaxLineLength) and
//     only they are rewritten, to qualify addresses without a domain.
//   - Reply coalescing. go-smtp flushes every reply line on its own; conn
//     holds written replies and sends them in one write when it has no more
//     buffered input to hand out and must wait for the client (and on
//     Close). Pipelined commands get their replies in one segment, as
//     Postfix's smtpd does.
//   - Idle timeouts per read. go-smtp arms its read deadline once per command
//     line, so a whole DATA phase would have to fit in one ReadTimeout; here
//     every network read gets a fresh deadline: the limit is on silence.
//   - Graceful shutdown: a session that waits for a command outside a mail
//     transaction is told 421 and closed; one inside a transaction finishes.
type conn struct {
	net.Conn
	srv *Server

	readTimeout  time.Duration
	writeTimeout time.Duration
	cmdLimit     int // longest command line, bytes including CRLF

	// Input state, used by the session goroutine only.
	buf     []byte // network input; in is its unread part
	in      []byte
	pending []byte // rest of a command line that did not fit go-smtp's buffer
	mode    inputMode
	chunk   int64   // bytes left in the current BDAT chunk
	dot     dataEnd // end-of-data state in modeData
	readErr error   // sticky: a timed-out or over-long read stays failed
	netErr  error   // a read error that arrived with data, returned next

	// Replies are written by the session goroutine but also flushed by Close,
	// which go-smtp may call from another goroutine.
	wmu    sync.Mutex
	out    bytes.Buffer
	closed bool
	// ended is set by Close: go-smtp closes a session (after "500 Too many
	// errors", say) and then keeps reading, so Read must hand it nothing
	// more — not even commands already buffered — or a client could pipeline
	// a whole transaction behind the junk that ended its session.
	ended    atomic.Bool
	dataNext bool // a 354 was written: message data follows

	mu     sync.Mutex // guards the fields below, shared with Shutdown
	inTx   bool       // MAIL accepted, transaction not finished
	inData bool       // Session.Data running
}

type inputMode int

const (
	modeCommand inputMode = iota
	modeData
	modeChunk
)

// readSize is the network read size; command lines may grow buf beyond it.
const readSize = 32 << 10

func newConn(c net.Conn, srv *Server) *conn {
	return &conn{
		Conn:         c,
		srv:          srv,
		readTimeout:  srv.opt.ReadTimeout,
		writeTimeout: srv.opt.WriteTimeout,
		cmdLimit:     srv.opt.MaxLineLength,
	}
}

func (c *conn) setTx(on bool) {
	c.mu.Lock()
	c.inTx = on
	c.mu.Unlock()
}

func (c *conn) setData(on bool) {
	c.mu.Lock()
	c.inData = on
	c.mu.Unlock()
}

// idleLocked reports whether the session is between transactions, where
// ending it loses nothing. c.mu must be held.
func (c *conn) idleLocked() bool { return !c.inTx && !c.inData }

// interruptIfIdle wakes a session blocked waiting for a command outside a
// transaction, so that Read can answer 421 and end it.
func (c *conn) interruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idleLocked() {
		// A deadline in the past makes a pending Read return at once.
		_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// Write queues reply bytes; they are sent by flush.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	// go-smtp writes each reply line in one call, and its 354 is the one
	// sign that it will read message data next.
	if bytes.HasPrefix(p, []byte("354 ")) {
		c.dataNext = true
	}
	c.out.Write(p)
	// A reply never gets this big; the bound only keeps memory in check if
	// go-smtp ever writes without reading.
	if c.out.Len() > 64<<10 {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *conn) flushLocked() error {
	if c.out.Len() == 0 {
		return nil
	}
	if c.writeTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	_, err := c.Conn.Write(c.out.Bytes())
	c.out.Reset()
	return err
}

func (c *conn) takeDataNext() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	d := c.dataNext
	c.dataNext = false
	return d
}

// Read hands go-smtp its next input: one command line (possibly rewritten
// by qualify), or message data up to the end marker, or BDAT chunk bytes.
func (c *conn) Read(p []byte) (int, error) {
	if c.ended.Load() {
		return 0, net.ErrClosed
	}
	if c.readErr != nil {
		return 0, c.readErr
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.mode == modeCommand && c.takeDataNext() {
		c.mode, c.dot = modeData, deBeginLine
	}
	switch c.mode {
	case modeData:
		if err := c.need(1); err != nil {
			return 0, err
		}
		b := c.in
		if len(b) > len(p) {
			b = b[:len(p)]
		}
		n, end := c.dot.scan(b)
		copy(p, b[:n])
		c.in = c.in[n:]
		if end {
			c.mode = modeCommand
		}
		return n, nil
	case modeChunk:
		if err := c.need(1); err != nil {
			return 0, err
		}
		n := copy(p, c.in[:min(int64(len(c.in)), c.chunk)])
		c.in = c.in[n:]
		c.chunk -= int64(n)
		if c.chunk == 0 {
			c.mode = modeCommand
		}
		return n, nil
	}

	// A command line.
	for {
		if i := bytes.IndexByte(c.in, '\n'); i >= 0 {
			if i+1 > c.cmdLimit {
				return c.tooLong()
			}
			line := c.in[:i+1]
			c.in = c.in[i+1:]
			if size, ok := bdatSize(line); ok && size > 0 {
				c.mode, c.chunk = modeChunk, size
			}
			line = qualify(line, c.srv.opt.Hostname)
			n := copy(p, line)
			if n < len(line) {
				c.pending = append(c.pending[:0], line[n:]...)
			}
			return n, nil
		}
		if len(c.in) >= c.cmdLimit {
			return c.tooLong()
		}
		if err := c.need(len(c.in) + 1); err != nil {
			if errors.Is(err, io.EOF) && c.readErr == nil && len(c.in) > 0 {
				// A last line without a line end: hand it over as it is,
				// as go-smtp would have read it.
				n := copy(p, c.in)
				c.in = c.in[n:]
				return n, nil
			}
			return 0, err
		}
	}
}

// need reads from the network until at least n input bytes are buffered.
// Before it blocks it sends the queued replies, and it answers an idle
// session of a closing server with 421.
func (c *conn) need(n int) error {
	for len(c.in) < n {
		if c.netErr != nil {
			return c.netErr
		}
		if err := c.flush(); err != nil {
			c.readErr = err
			return err
		}
		// Move the unread bytes to the front; grow only for a long command
		// line (at most MaxLineLength).
		if cap(c.buf) < max(readSize, n) {
			c.buf = make([]byte, 0, max(readSize, 2*n))
		}
		k := copy(c.buf[:cap(c.buf)], c.in)
		c.buf = c.buf[:k]

		c.mu.Lock()
		if c.mode == modeCommand && c.srv.isClosing() && c.idleLocked() {
			c.mu.Unlock()
			return c.sayShutdown()
		}
		if dl := c.srv.lim.readDeadline(c, time.Now()); !dl.IsZero() {
			_ = c.Conn.SetReadDeadline(dl)
		}
		c.mu.Unlock()

		m, err := c.Conn.Read(c.buf[k:cap(c.buf)])
		c.buf = c.buf[:k+m]
		c.in = c.buf
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.mu.Lock()
			shutdown := c.mode == modeCommand && c.srv.isClosing() && c.idleLocked()
			c.mu.Unlock()
			if shutdown {
				return c.sayShutdown()
			}
			// go-smtp recognises a timeout (to answer 421 4.4.2) only by a
			// direct net.Error type assertion, which an *os.PathError from a
			// stdin pipe is not.
			err = timeoutError{err}
			c.readErr = err
		}
		if m > 0 {
			// Hand out what came with the error first.
			c.netErr = err
			continue
		}
		return err
	}
	return nil
}

// tooLong fails this and every later read with go-smtp's own error, which
// makes it answer "500 5.4.0 Too long line, closing connection" and hang up.
func (c *conn) tooLong() (int, error) {
	c.readErr = smtp.ErrTooLongLine
	return 0, c.readErr
}

// sayShutdown tells an idle client that the server is going away (RFC 5321
// 421) and ends the session; go-smtp treats io.EOF as a clean end.
func (c *conn) sayShutdown() error {
	if _, err := c.Write([]byte("421 4.3.2 " + c.srv.opt.Hostname + " Service shutting down, closing transmission channel\r\n")); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		c.srv.log.Debug("smtp shutdown notice not sent", "remote", c.RemoteAddr().String(), "err", err)
	}
	c.readErr = io.EOF
	return io.EOF
}

// Close sends what is still queued (a final 221 or 421), then closes.
func (c *conn) Close() error {
	c.ended.Store(true)
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return nil
	}
	c.closed = true
	ferr := c.flushLocked()
	c.wmu.Unlock()
	c.srv.untrack(c)
	if ferr != nil && !errors.Is(ferr, net.ErrClosed) {
		c.srv.log.Debug("smtp final reply not sent", "remote", c.RemoteAddr().String(), "err", ferr)
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && ferr == nil {
		if err := cw.CloseWrite(); err == nil {
			c.srv.linger.Add(1)
			go c.linger()
			return nil
		}
	}
	cerr := c.Conn.Close()
	if errors.Is(cerr, net.ErrClosed) {
		// abort got there first.
		return nil
	}
	return cerr
}

// Lingering close bounds.
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// linger finishes a close whose write side is already shut. Closing a TCP
// socket that still has unread input (the rest of an over-long line, commands
// pipelined after the one that ended the session) sends a reset, and the
// reset can destroy the last reply before the client reads it. So the input
// is drained until the client closes too, or briefly, off the session.
func (c *conn) linger() {
	defer c.srv.linger.Done()
	_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, lingerBytes))
	if err := c.Conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		c.srv.log.Debug("smtp close", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// abort closes the network connection without the lock or a final flush, so
// that a session stuck in a read or a write ends at once.
func (c *conn) abort() {
	if err := c.Conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		c.srv.log.Debug("smtp abort", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// timeoutError presents a wrapped timeout as a net.Error.
type timeoutError struct{ err error }

func (e timeoutError) Error() string   { return e.err.Error() }
func (e timeoutError) Unwrap() error   { return e.err }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }
