package smtpd

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"herald/internal/peer"
)

// Connection limits, the listener's share of "limits at every door" (see
// docs/limits.md): any local user can open sockets to the SMTP port, so what
// one of them may cost is bounded.
//
//   - Sessions: at most Options.MaxSessions at once, and at most
//     Options.MaxSessionsPerClient from one client (as Postfix's
//     default_process_limit and anvil's smtpd_client_connection_count_limit).
//     A client is a local user for a loopback peer whose uid the kernel
//     tells through sock_diag (internal/peer), since every local client
//     shares 127.0.0.1 and one user's idle sockets must not lock out root's
//     cron; otherwise (or without sock_diag) it is the peer's address. One more is answered "421 4.7.0" at
//     connection time and closed, before go-smtp sees it.
//   - Session time: Options.SessionTime bounds a whole session, on top of
//     the per-read timeout, so a client that sends one byte a second never
//     times out per read but is still cut off.
//   - Mail rate: a session may start Options.MailsPerMinute mails a minute
//     (a token bucket, so a burst of that many is fine); the next MAIL is
//     answered 421 and the session ends.
//
// Refusals are answered off the accept loop, like refusals of peers that are
// not allowed, but at most maxRefusing at once: beyond that a refused
// connection is closed without a reply, so that a flood of connections
// cannot pin file descriptors in half-closed refusals.

// Replies of the limits.
const (
	busyReply = "421 4.7.0 Error: too many connections, try again later\r\n"
)

var errMailRate = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Error: too many messages in this session, try again later"}

// maxRefusing bounds the refusals being answered at once.
const maxRefusing = 64

// refusalLogEvery is how often a continuing flood of refusals is logged.
const refusalLogEvery = 10 * time.Second

// limiter holds the per-server session accounting.
type limiter struct {
	maxSessions, maxPerClient int
	sessionTime               time.Duration
	mailsPerMinute            int

	mu        sync.Mutex
	total     int
	perClient map[clientKey]int
	sessions  map[*conn]*sessionLimit

	refusing atomic.Int32 // refusals being answered
	refused  atomic.Int64 // refusals since the last log line
	lastLog  atomic.Int64 // UnixNano of the last refusal log line
}

// clientKey says who a client is: a local user (uid set) or an address.
type clientKey struct {
	uid  int // -1: not known
	addr netip.Addr
}

// sessionLimit is the accounting of one admitted session.
type sessionLimit struct {
	client clientKey
	start  time.Time
	tokens float64 // mails the session may still start now
	last   time.Time
}

func newLimiter(o Options) *limiter {
	return &limiter{
		maxSessions:    o.MaxSessions,
		maxPerClient:   o.MaxSessionsPerClient,
		sessionTime:    o.SessionTime,
		mailsPerMinute: o.MailsPerMinute,
		perClient:      make(map[clientKey]int),
		sessions:       make(map[*conn]*sessionLimit),
	}
}

// clientOf returns who the peer at remote is, for a connection accepted at
// local: its uid for a loopback peer the kernel knows, else its IP (the
// zero Addr for a peer that is not TCP: Unix sockets share one count).
func clientOf(local, remote net.Addr) clientKey {
	t, ok := remote.(*net.TCPAddr)
	if !ok {
		return clientKey{uid: -1}
	}
	ip, _ := netip.AddrFromSlice(t.IP)
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() {
		// sock_diag only: this runs in the accept loop (see TCPUIDFast).
		if uid, ok := peer.TCPUIDFast(local, remote); ok {
			return clientKey{uid: uid}
		}
	}
	return clientKey{uid: -1, addr: ip}
}

// admit counts c's session in, or reports why it may not start.
func (l *limiter) admit(c *conn, local, remote net.Addr) (ok bool, why string) {
	client := clientOf(local, remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxSessions > 0 && l.total >= l.maxSessions {
		return false, "too many sessions (smtp-max-sessions " + strconv.Itoa(l.maxSessions) + ")"
	}
	if l.maxPerClient > 0 && l.perClient[client] >= l.maxPerClient {
		return false, "too many sessions from this client (smtp-max-sessions-per-client " + strconv.Itoa(l.maxPerClient) + ")"
	}
	l.total++
	l.perClient[client]++
	now := time.Now()
	l.sessions[c] = &sessionLimit{client: client, start: now, tokens: float64(l.mailsPerMinute), last: now}
	return true, ""
}

// uidOf returns the uid admit found for c's client, if any.
func (l *limiter) uidOf(c *conn) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sl, ok := l.sessions[c]; ok && sl.client.uid >= 0 {
		return sl.client.uid, true
	}
	return 0, false
}

// release counts c's session out; sessions that were never admitted (the
// stdio session of sendmail -bs) are ignored. It reports how long the
// session lasted, and whether it was admitted.
func (l *limiter) release(c *conn) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sl, ok := l.sessions[c]
	if !ok {
		return 0, false
	}
	delete(l.sessions, c)
	l.total--
	if l.perClient[sl.client]--; l.perClient[sl.client] <= 0 {
		delete(l.perClient, sl.client)
	}
	return time.Since(sl.start), true
}

// active returns the number of admitted sessions.
func (l *limiter) active() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// readDeadline is the deadline of c's next network read: the per-read
// timeout, cut short by the end of the session's time.
func (l *limiter) readDeadline(c *conn, now time.Time) time.Time {
	var d time.Time
	if c.readTimeout > 0 {
		d = now.Add(c.readTimeout)
	}
	if l.sessionTime <= 0 {
		return d
	}
	l.mu.Lock()
	sl, ok := l.sessions[c]
	l.mu.Unlock()
	if !ok {
		return d
	}
	if end := sl.start.Add(l.sessionTime); d.IsZero() || end.Before(d) {
		return end
	}
	return d
}

// takeMail spends one of c's mail tokens, refilled at mailsPerMinute per
// minute, and reports whether there was one.
func (l *limiter) takeMail(c *conn) bool {
	if l.mailsPerMinute <= 0 || c == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sl, ok := l.sessions[c]
	if !ok {
		return true
	}
	now := time.Now()
	rate := float64(l.mailsPerMinute)
	sl.tokens = min(rate, sl.tokens+now.Sub(sl.last).Minutes()*rate)
	sl.last = now
	if sl.tokens < 1 {
		return false
	}
	sl.tokens--
	return true
}

// hangUp makes every later read of the session fail with io.EOF, which
// go-smtp takes as the client's goodbye: the reply already written (a 421)
// is flushed by Close and nothing more is read or executed.
func (c *conn) hangUp() {
	c.readErr = io.EOF
}

// refuseBusy answers a connection over the session limits with 421, or
// closes it at once when too many refusals are being answered already.
func (s *Server) refuseBusy(c net.Conn, why string) {
	n := s.lim.refused.Add(1)
	now := time.Now().UnixNano()
	if last := s.lim.lastLog.Load(); now-last >= int64(refusalLogEvery) && s.lim.lastLog.CompareAndSwap(last, now) {
		s.log.Warn("smtp connections refused: "+why, "remote", c.RemoteAddr().String(), "refused", n,
			"active", s.lim.active())
		s.lim.refused.Store(0)
	}
	if s.lim.refusing.Add(1) > maxRefusing {
		s.lim.refusing.Add(-1)
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("smtp refuse close", "err", err)
		}
		return
	}
	s.refusal.Add(1)
	go func() {
		defer s.lim.refusing.Add(-1)
		s.refuse(c, busyReply)
	}()
}

// logRelease notes a session that ran into its time limit.
func (s *Server) logRelease(c *conn) {
	d, ok := s.lim.release(c)
	if ok && s.lim.sessionTime > 0 && d >= s.lim.sessionTime {
		s.log.Warn("smtp session cut off: session time limit reached", "remote", c.RemoteAddr().String(),
			"limit", s.lim.sessionTime.String())
	}
}
