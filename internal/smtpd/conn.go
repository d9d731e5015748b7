package smtpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// conn sits between go-smtp and the network for every session, whatever the
// listener. It does four things go-smtp does not:
//
//   - Reply coalescing. go-smtp flushes every reply line on its own; conn
//     holds written replies and sends them in one write just before the
//     server would block reading (and on Close). Pipelined commands thus get
//     their replies in one segment, as Postfix does.
//   - Idle timeouts per read. go-smtp arms its read deadline once per command
//     line, so a whole DATA phase would have to fit in one ReadTimeout; here
//     every read gets a fresh deadline, so the limit is on silence.
//   - A line-length limit on commands only (see Options.MaxLineLength).
//   - Graceful shutdown: a session that waits for a command outside a mail
//     transaction is told 421 and closed; one inside a transaction finishes.
type conn struct {
	net.Conn
	srv *Server

	readTimeout  time.Duration
	writeTimeout time.Duration
	cmdLimit     int // longest command line, bytes including CRLF
	dataLimit    int // longest line while a message is being received

	// Only the session goroutine reads; lineLen and readErr need no lock.
	lineLen int
	readErr error // sticky: a timed-out or over-long read stays failed

	// Replies are written by the session goroutine but also flushed by Close,
	// which go-smtp may call from another goroutine.
	wmu    sync.Mutex
	out    bytes.Buffer
	closed bool

	mu     sync.Mutex // guards the fields below, shared with Shutdown
	inTx   bool       // MAIL accepted, transaction not finished
	inData bool       // Session.Data running
}

func newConn(c net.Conn, srv *Server) *conn {
	return &conn{
		Conn:         c,
		srv:          srv,
		readTimeout:  srv.opt.ReadTimeout,
		writeTimeout: srv.opt.WriteTimeout,
		cmdLimit:     srv.opt.MaxLineLength,
		dataLimit:    int(srv.opt.MaxMessageSize) + srv.opt.MaxLineLength,
	}
}

// errShutdown ends a session that the server closed between transactions.
var errShutdown = errors.New("smtpd: server shutting down")

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

// Read flushes pending replies, then reads with a fresh idle deadline.
func (c *conn) Read(p []byte) (int, error) {
	if c.readErr != nil {
		return 0, c.readErr
	}
	if err := c.flush(); err != nil {
		c.readErr = err
		return 0, err
	}

	c.mu.Lock()
	if c.srv.isClosing() && c.idleLocked() {
		c.mu.Unlock()
		return 0, c.sayShutdown()
	}
	inData := c.inData
	if c.readTimeout > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
	c.mu.Unlock()

	n, err := c.Conn.Read(p)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.mu.Lock()
			shutdown := c.srv.isClosing() && c.idleLocked()
			c.mu.Unlock()
			if shutdown {
				return 0, c.sayShutdown()
			}
			c.readErr = err
		}
		return n, err
	}

	limit := c.cmdLimit
	if inData {
		limit = c.dataLimit
	}
	if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
		// Only the bytes before the first newline extend the current line;
		// any whole line in between must fit on its own.
		if c.lineLen+bytes.IndexByte(p[:n], '\n')+1 > limit || longestLine(p[:i+1]) > limit {
			return c.tooLong()
		}
		c.lineLen = n - i - 1
	} else {
		c.lineLen += n
	}
	if c.lineLen > limit {
		return c.tooLong()
	}
	return n, nil
}

// tooLong fails this and every later read with go-smtp's own error, which
// makes it answer "500 5.4.0 Too long line, closing connection" and hang up.
func (c *conn) tooLong() (int, error) {
	c.readErr = smtp.ErrTooLongLine
	return 0, c.readErr
}

// longestLine returns the length of the longest newline-terminated line in
// b, which must end in a newline. Cheap for normal input: lines are short.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i+1 > longest {
			longest = i + 1
		}
		b = b[i+1:]
	}
	return longest
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
