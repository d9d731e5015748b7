// Package smtpd holds herald's SMTP listener: the loopback SMTP server that
// bsmtp, swaks, msmtp, Python's smtplib and relaying MTAs talk to, and the
// same dialogue over stdin/stdout for `sendmail -bs`. It is built on
// github.com/emersion/go-smtp and hands every message, streamed, to a
// Submitter (the spool); it answers 250 only once Submit has made the message
// durable.
//
// Protocol decisions, so that they are written down in one place:
//
//   - Advertised after EHLO: PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES,
//     CHUNKING (go-smtp always offers it), SMTPUTF8, SIZE n and
//     LIMITS RCPTMAX=n. No AUTH and no STARTTLS: the listener is for local
//     peers. HELO works as well and 8-bit data is accepted after it (bsmtp).
//   - Line ends: commands may end in CRLF or a bare LF. In message data a bare
//     LF is kept as it is, but only CRLF.CRLF ends the message (as Postfix
//     does, which also rules out SMTP smuggling); a client that ends DATA
//     with LF.LF runs into the idle timeout and nothing is submitted.
//   - Line length: MaxLineLength limits command lines only. Message lines are
//     not limited apart from the message size, because Postfix accepts long
//     lines and a notification lost for a long line is worse than a long line.
//   - Addresses without a domain (MAIL FROM:<bacula>, RCPT TO:<root>, as
//     bsmtp sends them for `bsmtp -f bacula root`) are qualified with
//     Options.Hostname, as Postfix qualifies them with $myorigin; go-smtp
//     alone would refuse them with 501 and bsmtp would lose the mail.
//   - Size: go-smtp rejects a message of exactly MaxMessageSize bytes as well
//     as larger ones (its reader fails once the limit is used up).
//   - Bcc header fields are removed as a message streams into the spool
//     (internal/mailhdr), over the network and for sendmail -bs alike: a
//     blind copy must not show in a notification or a relayed copy.
//   - go-smtp ends a session after its fourth syntax error (500 5.5.1 Too many
//     errors); nothing the client sent after that is read (see conn.Read).
//   - Headers: MaxHeaderSize and MaxHeaderFields bound the header block; a
//     message over them gets 552 5.3.4 and is not spooled.
package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"herald/internal/spool"
)

// Submitter takes one message into durable storage. It must read body to
// its end, fail with an error wrapping spool.ErrTooLarge when the body exceeds
// maxSize bytes, and return an ID only once the message is durable.
type Submitter interface {
	Submit(env spool.Envelope, body io.Reader, maxSize int64) (id string, err error)
}

// Options configures a Server. Zero values take the defaults in
// withDefaults.
type Options struct {
	// Hostname is the domain in the greeting and the EHLO reply.
	Hostname string
	// MaxMessageSize is the largest message accepted, in bytes; it is
	// advertised as SIZE. Larger messages get 552 5.3.4.
	MaxMessageSize int64
	// MaxRecipients bounds RCPT TO per message; more get 452 4.5.3.
	MaxRecipients int
	// MaxHeaderSize bounds a message's header block in bytes and
	// MaxHeaderFields its number of header fields (continuation lines
	// belong to their field). A message over either gets 552 5.3.4 and is
	// not spooled: a header bomb (millions of tiny fields) costs far more
	// to convert than its size suggests. Postfix bounds headers too
	// (header_size_limit), but truncates; a notification daemon refuses,
	// so that the sender learns of it.
	MaxHeaderSize   int64
	MaxHeaderFields int
	// MaxLineLength bounds an SMTP command line, CRLF included; a longer one
	// gets "500 5.4.0 Too long line" and the connection is closed. RFC 5321
	// needs 512; the default is 4096 for extension parameters and long
	// names. Message lines are not limited (see the package comment).
	MaxLineLength int
	// ReadTimeout is how long the server waits for the client to send
	// anything, commands and message data alike; WriteTimeout bounds a reply.
	ReadTimeout, WriteTimeout time.Duration
	// Allow lists the non-loopback networks whose peers may connect.
	// Loopback peers and Unix-socket peers are always allowed.
	Allow []netip.Prefix
	// Logger receives one line per accepted mail and the details of
	// failures, which clients never see.
	Logger *slog.Logger
	// OnAccepted, if set, is called with the spool ID after each message has
	// been made durable, before its 250 is sent.
	OnAccepted func(id string)
	// MaxSessions and MaxSessionsPerClient cap concurrent sessions, in all
	// and per client (a local user on loopback, else an address);
	// SessionTime bounds a whole session;
	// MailsPerMinute bounds the mails one session may start. Zero means no
	// limit. See limits.go.
	MaxSessions, MaxSessionsPerClient int
	SessionTime                       time.Duration
	MailsPerMinute                    int
}

// Defaults for zero Options fields.
const (
	DefaultMaxMessageSize = 50 << 20
	DefaultMaxRecipients  = 1000
	DefaultMaxLineLength  = 4096
	// DefaultMaxHeaderSize and DefaultMaxHeaderFields leave room for the
	// largest real headers (long To: lists, many Received: lines) while
	// keeping conversion cheap.
	DefaultMaxHeaderSize   = 1 << 20
	DefaultMaxHeaderFields = 10000
	DefaultTimeout         = 5 * time.Minute
	// MinLineLength is the smallest command-line limit: RFC 5321's 512.
	MinLineLength = 512
)

func (o Options) withDefaults() Options {
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Hostname = h
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = DefaultMaxRecipients
	}
	if o.MaxHeaderSize <= 0 {
		o.MaxHeaderSize = DefaultMaxHeaderSize
	}
	if o.MaxHeaderFields <= 0 {
		o.MaxHeaderFields = DefaultMaxHeaderFields
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = DefaultMaxLineLength
	}
	if o.MaxLineLength < MinLineLength {
		o.MaxLineLength = MinLineLength
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server is herald's SMTP server. Create it with New, run it with Serve on
// one or more listeners, stop it with Shutdown or Close.
type Server struct {
	sub    Submitter
	opt    Options
	log    *slog.Logger
	source string // Envelope.Source: "smtp", or "sendmail" for -bs
	smtp   *smtp.Server
	lim    *limiter

	closing atomic.Bool
	mu      sync.Mutex
	lns     []net.Listener
	conns   map[*conn]struct{}
	refusal sync.WaitGroup // refused connections still being answered
	linger  sync.WaitGroup // closed sessions draining their input
}

// SourceSMTP and SourceSendmail are the Envelope.Source values this package
// sets: a message received over the network, or over `sendmail -bs`.
const (
	SourceSMTP     = "smtp"
	SourceSendmail = "sendmail"
)

// New returns a server that submits every accepted message to sub.
func New(sub Submitter, opt Options) *Server {
	return newServer(sub, opt, SourceSMTP)
}

func newServer(sub Submitter, opt Options, source string) *Server {
	opt = opt.withDefaults()
	s := &Server{
		sub:    sub,
		opt:    opt,
		log:    opt.Logger,
		source: source,
		conns:  make(map[*conn]struct{}),
		lim:    newLimiter(opt),
	}
	ss := smtp.NewServer(backend{s})
	ss.Domain = opt.Hostname
	ss.MaxMessageBytes = opt.MaxMessageSize
	ss.MaxRecipients = opt.MaxRecipients
	// conn enforces line length and read timeouts itself: go-smtp's versions
	// would also limit message lines and time the whole DATA phase.
	ss.MaxLineLength = 0
	ss.ReadTimeout = 0
	ss.WriteTimeout = opt.WriteTimeout
	ss.EnableSMTPUTF8 = true
	ss.ErrorLog = errorLog{s.log}
	// No TLSConfig and no AllowInsecureAuth: go-smtp then offers neither
	// STARTTLS nor AUTH.
	s.smtp = ss
	return s
}

// Serve accepts connections on l until Shutdown or Close and returns nil
// then. TCP connections get the same tuning as WrapListener's; peers that
// are neither loopback nor in Options.Allow are answered 554 and closed.
func (s *Server) Serve(l net.Listener) error {
	l = WrapListener(l)
	gl := &guardListener{Listener: l, srv: s}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		if err := l.Close(); err != nil {
			s.log.Debug("smtp listener close", "err", err)
		}
		return nil
	}
	s.lns = append(s.lns, gl)
	s.mu.Unlock()
	err := s.smtp.Serve(gl)
	if s.closing.Load() {
		// Shutdown closed the listener before telling go-smtp, which then
		// reports the failed Accept.
		return nil
	}
	return err
}

func (s *Server) isClosing() bool { return s.closing.Load() }

func (s *Server) track(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.logRelease(c)
}

// beginClose stops accepting and tells idle sessions to leave.
func (s *Server) beginClose() {
	s.mu.Lock()
	s.closing.Store(true)
	for _, l := range s.lns {
		// Closing makes Accept fail, which go-smtp's Serve reads as the end.
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("smtp listener close", "err", err)
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.interruptIfIdle()
	}
}

func (s *Server) abortAll() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
}

// Shutdown stops accepting connections, answers 421 to sessions that wait
// for a command outside a mail transaction, and lets the others finish their
// message. When ctx ends first, the remaining connections are closed (their
// unfinished messages are not acknowledged, so not lost) and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	err := s.smtp.Shutdown(ctx)
	if err == nil || errors.Is(err, smtp.ErrServerClosed) {
		// Both are bounded by a few seconds.
		s.refusal.Wait()
		s.linger.Wait()
		return nil
	}
	s.abortAll()
	if cerr := s.smtp.Close(); cerr != nil && !errors.Is(cerr, smtp.ErrServerClosed) {
		s.log.Debug("smtp close", "err", cerr)
	}
	return err
}

// Close closes the listeners and every connection at once. Messages whose
// DATA was not finished are not acknowledged.
func (s *Server) Close() error {
	s.beginClose()
	s.abortAll()
	err := s.smtp.Close()
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// errorLog sends go-smtp's internal error reports to slog.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Warn("smtp: " + fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) {
	e.log.Warn("smtp: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
