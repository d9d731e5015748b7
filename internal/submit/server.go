package submit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"herald/internal/peer"
	"herald/internal/spool"
)

// Spool is what the server stores submissions with; *spool.Spool has it.
type Spool interface {
	// Submit stores one entry durably and returns its ID (see
	// spool.(*Spool).Submit: it applies the free-space reserve).
	Submit(env spool.Envelope, body io.Reader, maxSize int64) (string, error)
	// UserOK applies the per-uid limit.
	UserOK(uid int) error
}

// Options configures a Server; zero values mean the defaults.
type Options struct {
	// MaxSize is the largest message accepted (default and at most
	// MaxMessageSize).
	MaxSize int64
	// MaxConns bounds the submissions served at once (default 64); more
	// connections wait in the listen backlog until a slot is free.
	MaxConns int
	// ReadTimeout bounds reading one whole request (default 30 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the reply (default 10 s).
	WriteTimeout time.Duration
	Logger       *slog.Logger
}

// Server serves the submission socket.
type Server struct {
	sp    Spool
	opt   Options
	log   *slog.Logger
	slots chan struct{}
	done  chan struct{} // closed by Shutdown
	wg    sync.WaitGroup

	mu     sync.Mutex
	ls     []net.Listener
	closed bool
}

// New returns a server storing into sp.
func New(sp Spool, opt Options) *Server {
	if opt.MaxSize <= 0 || opt.MaxSize > MaxMessageSize {
		opt.MaxSize = MaxMessageSize
	}
	if opt.MaxConns <= 0 {
		opt.MaxConns = 64
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = 30 * time.Second
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{sp: sp, opt: opt, log: opt.Logger, slots: make(chan struct{}, opt.MaxConns),
		done: make(chan struct{})}
}

// Serve accepts connections on l until l is closed or Shutdown is called;
// it then returns net.ErrClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ls = append(s.ls, l)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		// A slot first: beyond MaxConns, clients wait in the kernel's
		// backlog and hold no descriptor of ours.
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return net.ErrClosed
		}
		c, err := l.Accept()
		if err != nil {
			<-s.slots
			if errors.Is(err, net.ErrClosed) {
				return net.ErrClosed
			}
			// Out of descriptors, say: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("submit: accept failed", "err", err, "retry_in", backoff.String())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		// Added under mu, so that Shutdown's Wait sees every connection
		// accepted before it closed the listeners.
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close() // not read: the client falls back to the maildrop
			<-s.slots
			return net.ErrClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.serveConn(c)
		}()
	}
}

// Shutdown stops accepting and waits for the submissions being served
// (each bounded by the read and write timeouts) or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		close(s.done)
	}
	s.closed = true
	for _, l := range s.ls {
		_ = l.Close() // Serve returns; nothing to lose
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serveConn serves one submission. The reply goes out only after Submit
// returned: success means the entry is durable.
func (s *Server) serveConn(c net.Conn) {
	defer func() {
		if p := recover(); p != nil {
			// Nothing was acknowledged; the shim falls back to the maildrop
			// (an entry Submit may have stored is the same event: EventID).
			s.log.Error("submit: panic serving a submission", "panic", p, "stack", string(debug.Stack()))
		}
		if err := c.Close(); err != nil {
			s.log.Debug("submit: close", "err", err)
		}
	}()
	// The kernel's word (SO_PEERCRED), never the request's.
	uid, ok := peerUID(c)
	if !ok {
		s.log.Warn("submit: cannot tell the client's uid; refused")
		s.reply(c, StatusTempFail, "cannot tell who is submitting")
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(s.opt.ReadTimeout))
	br := bufio.NewReaderSize(c, 64<<10)
	req, n, err := ReadRequest(br, s.opt.MaxSize)
	if err != nil {
		var pe *ProtocolError
		switch {
		case errors.As(err, &pe):
			s.log.Warn("submit: bad request", "uid", uid, "err", err)
			s.reply(c, StatusProtocol, err.Error())
		case errors.Is(err, ErrTooLarge):
			s.reply(c, StatusDataErr, fmt.Sprintf("message too large: the limit is %d bytes", s.opt.MaxSize))
		default:
			// The client went away or stalled: nothing was stored.
			s.log.Debug("submit: request not read", "uid", uid, "err", err)
		}
		return
	}
	body := &bodyReader{r: br, n: n}
	if err := s.sp.UserOK(uid); err != nil {
		// Read to the end first, so the client can read the reply.
		if _, derr := io.Copy(io.Discard, body); derr == nil {
			s.reply(c, StatusTempFail, err.Error())
		}
		return
	}
	env := spool.Envelope{
		Kind:       req.Kind,
		Source:     req.Source,
		From:       req.From,
		Recipients: req.Recipients,
		PeerUID:    &uid,
		Submission: req.Submission,
	}
	id, err := s.sp.Submit(env, body, s.opt.MaxSize)
	if err != nil {
		var be *spool.BodyError
		switch {
		case errors.As(err, &be):
			// Truncated or timed out: Submit left nothing behind.
			s.log.Info("submit: client went away mid-message; nothing stored", "uid", uid, "err", be.Err)
		case errors.Is(err, spool.ErrTooLarge):
			s.reply(c, StatusDataErr, err.Error())
		default:
			if !spool.IsTemporary(err) {
				s.log.Error("submit: cannot store a submission", "uid", uid, "err", err)
			} else {
				s.log.Warn("submit: submission refused for now", "uid", uid, "err", err)
			}
			s.reply(c, StatusTempFail, err.Error())
		}
		return
	}
	s.log.Debug("submit: stored", "spool_id", id, "uid", uid, "submission", req.Submission, "size", n)
	s.reply(c, StatusOK, id)
}

// reply writes one reply; a client that is gone loses nothing it was told.
func (s *Server) reply(c net.Conn, status byte, text string) {
	_ = c.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
	if _, err := c.Write(EncodeReply(status, text)); err != nil {
		s.log.Info("submit: reply not delivered; the shim falls back to the maildrop", "status", int(status), "err", err)
	}
}

// peerUID is the uid of the process that connected c.
func peerUID(c net.Conn) (int, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, false
	}
	return peer.UnixUID(uc)
}
