package smtpd

import (
	"errors"
	"io"
	"time"

	"github.com/emersion/go-smtp"

	"herald/internal/mailhdr"
	"herald/internal/peer"
	"herald/internal/spool"
)

// Replies of our own; go-smtp words the protocol errors.
var (
	errNestedMail = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Error: nested MAIL command"}
	errTooBig     = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed limit"}
	errHeaderBig  = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message header exceeds fixed limit"}
	errLocal      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Requested action aborted: local problem in processing"}
	errNoSpace    = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}
)

// spaceChecker is a Submitter that can tell before a transaction that it
// would refuse for lack of disk space (*spool.Spool).
type spaceChecker interface{ SpaceOK() error }

type backend struct{ srv *Server }

// NewSession runs at the first HELO or EHLO. Refused peers never get here:
// guardListener answers them at connection time.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	cn, _ := c.Conn().(*conn)
	return &session{srv: b.srv, c: c, conn: cn}, nil
}

// session is one SMTP session's mail transaction state.
type session struct {
	srv  *Server
	c    *smtp.Conn
	conn *conn // nil only if go-smtp were handed a foreign net.Conn

	from    string
	hasFrom bool
	rcpts   []string

	peerUID    *int // the client's uid, looked up at the first DATA
	peerLooked bool
}

// clientUID returns the local client's uid as the kernel reports it, or
// nil (a remote peer, sendmail -bs whose uid the spool records itself).
func (s *session) clientUID() *int {
	if s.peerLooked || s.srv.source == SourceSendmail {
		return s.peerUID
	}
	s.peerLooked = true
	if uid, ok := s.srv.lim.uidOf(s.conn); ok { // found at connection time
		s.peerUID = &uid
		return s.peerUID
	}
	nc := s.c.Conn()
	if uid, ok := peer.TCPUID(nc.LocalAddr(), nc.RemoteAddr()); ok {
		s.peerUID = &uid
	}
	return s.peerUID
}

func (s *session) setTx(on bool) {
	if s.conn != nil {
		s.conn.setTx(on)
	}
}

func (s *session) Reset() {
	s.from, s.hasFrom, s.rcpts = "", false, nil
	s.setTx(false)
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	// go-smtp would let a second MAIL overwrite the sender while keeping the
	// recipients; RFC 5321 wants RSET first.
	if s.hasFrom {
		return errNestedMail
	}
	// Postfix answers MAIL with 452 while its queue is below
	// queue_minfree: the client keeps the mail and retries.
	if sc, ok := s.srv.sub.(spaceChecker); ok {
		if err := sc.SpaceOK(); err != nil {
			s.srv.log.Warn("mail refused: spool below its free-space reserve", "remote", s.remote(), "err", err)
			return errNoSpace
		}
	}
	if !s.srv.lim.takeMail(s.conn) {
		s.srv.log.Warn("smtp session ended: mail rate limit reached", "remote", s.remote(),
			"limit_per_minute", s.srv.opt.MailsPerMinute)
		s.conn.hangUp()
		return errMailRate
	}
	s.from, s.hasFrom = from, true
	s.setTx(true)
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	// go-smtp has already enforced MaxRecipients (452 4.5.3).
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) remote() string {
	if s.srv.source == SourceSendmail {
		return ""
	}
	return s.c.Conn().RemoteAddr().String()
}

// Data streams the message into the Submitter. A nil error would make
// go-smtp answer a bare "250 OK: queued"; returning a 250 SMTPError is how
// the reply carries the spool ID.
func (s *session) Data(r io.Reader) error {
	if s.conn != nil {
		s.conn.setData(true)
		defer s.conn.setData(false)
	}
	env := spool.Envelope{
		Kind:       spool.KindMail,
		Source:     s.srv.source,
		From:       s.from,
		Recipients: append([]string(nil), s.rcpts...),
		Received:   time.Now(),
		Helo:       s.c.Hostname(),
		Remote:     s.remote(),
		PeerUID:    s.clientUID(),
	}
	body := &bodyReader{r: r, hdr: headerLimit{maxBytes: s.srv.opt.MaxHeaderSize, maxFields: s.srv.opt.MaxHeaderFields}}
	// Bcc fields go as the message streams by (the header limit above
	// still sees what the client sent).
	id, err := s.srv.sub.Submit(env, mailhdr.StripBcc(body), s.srv.opt.MaxMessageSize)
	log := s.srv.log.With("from", env.From, "rcpts", len(env.Recipients), "size", body.n, "remote", env.Remote, "helo", env.Helo)
	if err == nil {
		log.Info("mail accepted", "id", id)
		if s.srv.opt.OnAccepted != nil {
			s.srv.opt.OnAccepted(id)
		}
		return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + id}
	}
	switch {
	case body.hdr.exceeded:
		log.Warn("mail rejected: header too large", "header_bytes", body.hdr.bytes, "header_fields", body.hdr.fields,
			"limit_bytes", s.srv.opt.MaxHeaderSize, "limit_fields", s.srv.opt.MaxHeaderFields)
		return errHeaderBig
	case body.tooLarge || errors.Is(err, spool.ErrTooLarge):
		log.Warn("mail rejected: too large", "limit", s.srv.opt.MaxMessageSize)
		return errTooBig
	case body.err != nil:
		// The client went away or fell silent mid-message; the reply will
		// most likely not reach it, but go-smtp needs one.
		log.Warn("mail not accepted: client stopped sending", "err", body.err)
	case errors.Is(err, spool.ErrLowSpace):
		log.Warn("mail not accepted: spool below its free-space reserve", "err", err)
		return errNoSpace
	case spool.IsTemporary(err):
		log.Error("mail not accepted: spool failed (temporary)", "err", err)
	default:
		log.Error("mail not accepted: spool failed", "err", err)
	}
	return errLocal
}

// bodyReader counts the message bytes, enforces the header limits and
// remembers why reading stopped, so the reply does not depend on how the
// Submitter wraps read errors.
type bodyReader struct {
	r        io.Reader
	n        int64
	err      error // first read error other than io.EOF
	tooLarge bool
	hdr      headerLimit
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.hdr.exceeded {
		return 0, errHeaderBig
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if !b.hdr.done && n > 0 && !b.hdr.scan(p[:n]) {
		// Fail the Submitter's read: it discards what it wrote, and go-smtp
		// reads the rest of the message away before it replies.
		return 0, errHeaderBig
	}
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
		if errors.Is(err, smtp.ErrDataTooLarge) {
			b.tooLarge = true
		}
	}
	return n, err
}

// headerLimit follows the header block of a message as it streams by and
// counts its bytes and fields, up to the empty line that ends it, or up to
// the first line that is neither a field nor a continuation (a message
// without a header is body text, as the converter reads it too).
type headerLimit struct {
	maxBytes  int64
	maxFields int

	bytes     int64
	fields    int
	midLine   bool // inside a line (not at its start)
	inName    bool // inside the field name at the start of a line
	crAtStart bool // a CR at the start of a line: an empty line if LF follows
	done      bool // the header ended
	exceeded  bool
}

// scan consumes the next message bytes; it reports false once a limit is
// exceeded.
func (h *headerLimit) scan(p []byte) bool {
	for i, c := range p {
		if h.inName {
			switch {
			case c == ':':
				h.inName = false
			case c <= ' ' || c > '~':
				// Not a "Name:" line: the header is over; what follows is
				// body, whatever its size.
				h.bytes += int64(i)
				h.done = true
				return !h.over()
			}
			continue
		}
		if h.midLine {
			if c == '\n' {
				h.midLine = false
			}
			continue
		}
		switch {
		case c == '\n':
			// An empty line (LF or CRLF): the header ends here.
			h.bytes += int64(i + 1)
			h.done = true
			return !h.over()
		case c == '\r' && !h.crAtStart:
			h.crAtStart = true
			continue
		case c != ' ' && c != '\t':
			h.fields++ // a field starts; a space or tab continues the last one
			h.inName = true
		}
		h.crAtStart = false
		h.midLine = true
	}
	h.bytes += int64(len(p))
	return !h.over()
}

func (h *headerLimit) over() bool {
	if h.bytes > h.maxBytes || h.fields > h.maxFields {
		h.exceeded = true
	}
	return h.exceeded
}
