package smtpd

import (
	"errors"
	"herald/internal/peer"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Allowed reports whether a peer may use the server (the rule lives in
// internal/peer, shared with the HTTP API).
func Allowed(remote net.Addr, allow []netip.Prefix) bool { return peer.Allowed(remote, allow) }

// refusalReply is sent instead of the greeting to a peer that is not
// allowed; RFC 5321 section 3.1 lets a server answer 554 at connection time.
const refusalReply = "554 5.7.1 Access denied: this server accepts mail from local clients only\r\n"

// guardListener refuses peers that are not allowed before go-smtp sees them
// and wraps the allowed ones in a conn.
type guardListener struct {
	net.Listener
	srv       *Server
	closeOnce sync.Once
	closeErr  error
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !Allowed(c.RemoteAddr(), l.srv.opt.Allow) {
			l.srv.log.Warn("smtp connection refused: peer not allowed", "remote", c.RemoteAddr().String())
			l.srv.refusal.Add(1)
			go l.srv.refuse(c, refusalReply)
			continue
		}
		sc := newConn(c, l.srv)
		if ok, why := l.srv.lim.admit(sc, c.LocalAddr(), c.RemoteAddr()); !ok {
			l.srv.refuseBusy(c, why)
			continue
		}
		l.srv.track(sc)
		return sc, nil
	}
}

// Close is idempotent: both Shutdown and go-smtp close the listener.
func (l *guardListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

// refuse answers reply (554 to a peer not allowed, 421 over the session
// limits) and hangs up, off the accept loop so that a peer that does not read
// cannot stall it.
func (s *Server) refuse(c net.Conn, reply string) {
	defer s.refusal.Done()
	remote := c.RemoteAddr().String()
	if err := c.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		s.log.Debug("smtp refuse deadline", "remote", remote, "err", err)
	}
	if _, err := c.Write([]byte(reply)); err != nil {
		s.log.Debug("smtp refusal not sent", "remote", remote, "err", err)
	}
	// Closing a socket with unread input (a client that already sent EHLO)
	// resets it, and the reset can destroy the 554 before the client reads
	// it. So: half-close, swallow briefly what the client still sends, close.
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		}
	}
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("smtp refuse close", "remote", remote, "err", err)
	}
}
