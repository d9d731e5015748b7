// Package httpapi holds herald's HTTP listener on loopback (docs/interfaces.md §3.3):
// POST /api/v1/events takes an event as JSON, /api/push/TOKEN is an Uptime
// Kuma compatible push endpoint so existing hook scripts can point at herald
// unchanged (it feeds the heartbeat whose push-token it is), GET
// /api/v1/monitors lists the monitors, /metrics serves the Prometheus
// metrics and /healthz the daemon's health.
//
// Events enter herald through the spool like mail does: a request is
// answered with success only after Submit returned, that is after the entry
// is fsynced (file and directory). The daemon turns the entry into the event
// later and gives it the spool ID as its event ID.
//
// Only loopback peers (and Unix-socket peers) may use the API, plus the
// networks in Options.Allow. Browsers are kept out as well: a web page must
// not be able to raise or silence alarms through a loopback port, so
// cross-site requests are refused.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"herald/internal/metrics"
	"herald/internal/peer"
	"herald/internal/spool"
)

// Submitter writes an entry durably into the spool; *spool.Spool is one.
type Submitter interface {
	Submit(env spool.Envelope, body io.Reader, maxSize int64) (string, error)
}

// Options configure a Server. Every field may be left zero.
type Options struct {
	// Metrics is counted into (an accepted submission counts as source
	// "http") and served at /metrics; nil means no /metrics endpoint.
	Metrics *metrics.Metrics
	// Logger receives one line per accepted submission and every refusal;
	// nil discards.
	Logger *slog.Logger
	// Hostname fills an event's hostname field when the submitter left it
	// out ("" leaves that to the daemon).
	Hostname string
	// Allow lists the non-loopback networks whose peers may use the API.
	Allow []netip.Prefix
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PushMonitor resolves a push token to the name of its heartbeat;
	// a token it does not know is answered as Uptime Kuma answers an
	// unknown one (404) and feeds nothing. nil knows no token.
	PushMonitor func(token string) (monitor string, ok bool)
	// Monitors, if set, lists the monitors for GET /api/v1/monitors (any
	// value that marshals to JSON).
	Monitors func() any
	// Hosts are names accepted in the Host header besides IP literals and
	// localhost (host.go).
	Hosts []string
	// Healthy, if set, decides /healthz: nil error is 200 "ok", an error is
	// 503 with the error's text. Without it /healthz always answers 200.
	Healthy func() error
	// Web, if set, serves everything no API path takes (the status page,
	// which does its own token check).
	Web http.Handler
}

// MaxEventSize is the largest event JSON body POST /api/v1/events takes;
// a larger one is answered 413.
const MaxEventSize = 1 << 20

// Timeouts of the HTTP server. Clients are local scripts: a request that
// takes longer than this to arrive is broken or hostile.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	// writeTimeout also bounds a Submit (fsyncs on a loaded disk) plus
	// the reply, and a scrape.
	writeTimeout   = 60 * time.Second
	idleTimeout    = 120 * time.Second
	maxHeaderBytes = 64 << 10
)

// retryAfter is what a 503 on a spool failure tells the client, in seconds.
const retryAfter = "60"

// Server is the HTTP API. Serve may be called for several listeners (IPv4
// and IPv6 loopback, socket-activated ones); Shutdown stops them all.
type Server struct {
	sub     Submitter
	opt     Options
	log     *slog.Logger
	handler http.Handler
	srv     *http.Server
	cop     *http.CrossOriginProtection
}

// remoteKey is the context key under which Serve stores the peer's
// net.Addr, so that Unix-socket peers (whose RemoteAddr string is empty)
// can be told apart from unparseable addresses.
type remoteKey struct{}

// connKey is the context key of the connection itself (a Unix socket's
// peer credentials are read from it).
type connKey struct{}

// New returns a Server that submits into sub.
func New(sub Submitter, opt Options) *Server {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{sub: sub, opt: opt, log: log, cop: http.NewCrossOriginProtection()}

	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/events", s.handleEvents)
	mux.HandleFunc("/api/push/{token}", s.handlePush)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	if opt.Monitors != nil {
		mux.HandleFunc("GET /api/v1/monitors", s.handleMonitors)
	}
	if opt.Metrics != nil {
		mux.Handle("GET /metrics", opt.Metrics.Handler())
	}
	if opt.Web != nil {
		mux.Handle("/", opt.Web)
	}
	s.handler = s.guard(mux)

	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// net/http's own complaints (bad TLS attempts, panics) go to our
		// log. They never contain the request URL, so no push token.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ctx = context.WithValue(ctx, connKey{}, c)
			return context.WithValue(ctx, remoteKey{}, c.RemoteAddr())
		},
	}
	return s
}

// Handler returns the API with its access checks, for tests and for
// embedding in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on l until Shutdown and returns nil then.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the listeners and waits for requests in progress (a
// Submit under way completes and is answered). When ctx ends first the
// remaining connections are closed, unanswered, and ctx's error returned:
// their clients were told nothing, so they will retry.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		if cerr := s.srv.Close(); cerr != nil {
			s.log.Warn("http: close", "err", cerr)
		}
	}
	return err
}

// guard refuses peers that are not allowed, and cross-site requests from
// browsers, before any handler runs.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.allowed(r) {
			s.log.Warn("http request refused: peer not allowed", "remote", r.RemoteAddr,
				"method", r.Method, "path", redactPath(r.URL.Path))
			s.refuse(w, r, "forbidden: this API accepts local clients only")
			return
		}
		if !unixPeer(r) && !s.hostAllowed(r.Host) {
			s.log.Warn("http request refused: unknown Host (DNS rebinding?)", "remote", r.RemoteAddr,
				"method", r.Method, "path", redactPath(r.URL.Path), "host", r.Host)
			s.misdirected(w, r)
			return
		}
		if crossSite(r) || s.cop.Check(r) != nil || (stateChanging(r) && !s.originAllowed(r)) {
			s.log.Warn("http request refused: cross-site request from a browser", "remote", r.RemoteAddr,
				"method", r.Method, "path", redactPath(r.URL.Path), "origin", r.Header.Get("Origin"))
			s.refuse(w, r, "forbidden: cross-site requests are not accepted")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers 403 in the shape the endpoint's clients expect.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, msg string) {
	if isPushPath(r.URL.Path) {
		writePush(w, http.StatusForbidden, msg)
		return
	}
	writeError(w, http.StatusForbidden, msg)
}

// crossSite reports a request that a browser marked as coming from another
// site. CrossOriginProtection checks only unsafe methods; the push endpoint
// acts on GET as well (Kuma compatibility), so GETs are checked here. Tools
// such as curl send no Sec-Fetch-Site at all.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// allowed reports whether the peer of r may use the API: loopback, a Unix
// socket, or inside Options.Allow (internal/peer's rule, as for SMTP).
func (s *Server) allowed(r *http.Request) bool {
	if a, ok := r.Context().Value(remoteKey{}).(net.Addr); ok {
		return peer.Allowed(a, s.opt.Allow)
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	return peer.AllowedAddr(ap.Addr(), s.opt.Allow)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.opt.Healthy != nil {
		if err := s.opt.Healthy(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, strings.TrimRight(err.Error(), "\n")+"\n")
			return
		}
	}
	_, _ = io.WriteString(w, "ok\n")
}

// submitStatus maps a Submit error to the status code and the generic
// message the client gets; the detail goes to the log only.
func submitStatus(err error) (int, string) {
	switch {
	case errors.Is(err, spool.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "event too large"
	case spool.IsTemporary(err):
		return http.StatusServiceUnavailable, "spool temporarily unavailable, retry later"
	default:
		return http.StatusInternalServerError, "internal error: the event was not accepted"
	}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only maps and plain structs are passed: cannot happen.
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers the events API's error shape {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
