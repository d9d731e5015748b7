package smtpd

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// ServeStdio runs one SMTP session over in and out, as `sendmail -bs` does:
// the same server, limits and replies as on the network, with envelopes of
// Source "sendmail" and no peer check (the caller is the local user). It
// returns when the client quits or in ends, or when ctx ends (then with
// ctx's error). When the session ends, in is closed if it is an io.Closer,
// as a network connection would be; out is left open. Read timeouts apply
// only when in supports deadlines (pipes and sockets as *os.File do).
func ServeStdio(ctx context.Context, in io.Reader, out io.Writer, sub Submitter, opt Options) error {
	s := newServer(sub, opt, SourceSendmail)
	sc := &stdioConn{in: in, out: out, done: make(chan struct{})}
	c := newConn(sc, s)
	s.track(c)
	l := &oneConnListener{c: c, done: sc.done}

	served := make(chan error, 1)
	go func() { served <- s.smtp.Serve(l) }()

	select {
	case <-sc.done:
	case <-ctx.Done():
		c.abort()
		<-sc.done
	}
	// The session has closed its connection; Close makes Serve return and
	// waits for nothing else, there being no other connection.
	if err := s.smtp.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("smtp stdio close", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return ctx.Err()
}

// oneConnListener hands out one connection, then blocks until it is closed.
type oneConnListener struct {
	c    net.Conn
	done chan struct{}
	mu   sync.Mutex
	used bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	used := l.used
	l.used = true
	l.mu.Unlock()
	if !used {
		return l.c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error { return nil }

func (l *oneConnListener) Addr() net.Addr { return stdioAddr{} }

// stdioConn is a net.Conn over a reader and a writer.
type stdioConn struct {
	in   io.Reader
	out  io.Writer
	done chan struct{}
	once sync.Once
}

func (c *stdioConn) Read(p []byte) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	return c.in.Read(p)
}

func (c *stdioConn) Write(p []byte) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	return c.out.Write(p)
}

func (c *stdioConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		// Closing in is what unblocks a pending Read when ctx ends.
		if cl, ok := c.in.(io.Closer); ok {
			err = cl.Close()
		}
	})
	return err
}

func (c *stdioConn) LocalAddr() net.Addr  { return stdioAddr{} }
func (c *stdioConn) RemoteAddr() net.Addr { return stdioAddr{} }

func (c *stdioConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

type deadliner interface{ SetReadDeadline(time.Time) error }
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// SetReadDeadline uses in's deadline when it has one; a file or a stream
// without deadlines (os.ErrNoDeadline) just gets none.
func (c *stdioConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.in.(deadliner); ok {
		if err := d.SetReadDeadline(t); err != nil && !errors.Is(err, os.ErrNoDeadline) {
			return err
		}
	}
	return nil
}

// SetWriteDeadline is SetReadDeadline for out.
func (c *stdioConn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.out.(writeDeadliner); ok {
		if err := d.SetWriteDeadline(t); err != nil && !errors.Is(err, os.ErrNoDeadline) {
			return err
		}
	}
	return nil
}

type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "stdio" }
