// Package control holds the daemon's two admin sockets in the state
// directory — control.sock (`herald queue`, `status`, `monitors`: root and
// the daemon's user) and mailq.sock (mailq: any local user, each seeing
// their own mail) — on both sides: what the daemon serves, the client the
// commands use, and the wire format between them (HTTP over a unix socket,
// JSON bodies).
//
// An error crosses the socket with a code (Code), so that the client gets
// back an error that errors.Is matches against the same sentinel the daemon
// saw (delivery.ErrNotFound, monitor.ErrUnknown, ...): no caller looks at
// error text.
package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/metrics"
	"herald/internal/monitor"
)

// Socket is the daemon's admin socket inside the state directory: `herald
// queue` talks to a running daemon through it. Mode 0600: only the daemon's
// user (and root) may act on the queue.
const Socket = "control.sock"

// ErrNotRunning says no daemon answers on the state directory.
var ErrNotRunning = errors.New("herald is not running")

// QueueItem is one delivery as `herald queue show` prints it.
type QueueItem struct {
	Delivery delivery.Delivery `json:"delivery"`
	Event    *event.Event      `json:"event,omitempty"`
}

// QueueAdmin is what the queue commands need: the Client of a running
// daemon has it, and so has a view of the queue's files while none runs.
type QueueAdmin interface {
	List() ([]delivery.Delivery, error)
	Get(id string) (delivery.Delivery, *event.Event, error)
	Retry(id string) error
	Drop(id string) error
	// Flush makes every pending delivery due now (sendmail -q).
	Flush() (int, error)
}

// Status is what `herald status` shows of a running daemon.
type Status struct {
	Snapshot metrics.Snapshot
	Healthy  bool
	Problem  string // why not, when not Healthy
	SMTP     []string
	HTTP     []string
	// Notes are facts the admin should know (no relay set, ...).
	Notes []string `json:",omitempty"`
}

// Queue is the daemon's delivery queue as the control socket acts on it
// (*delivery.Queue).
type Queue interface {
	List() ([]delivery.Delivery, error)
	Get(id string) (delivery.Delivery, *event.Event, error)
	Retry(id string) error
	Drop(id string) error
	Flush() int
}

// Monitors is the daemon's monitor engine as the control socket acts on it
// (*monitor.Engine).
type Monitors interface {
	List() []monitor.Status
	Pause(name string) error
	Resume(name string) error
}

// Daemon is what the control socket serves.
type Daemon struct {
	Queue    Queue
	Monitors Monitors
	// Status is the daemon's status, health included.
	Status func() Status
}

// Handler serves the control socket's requests for d.
func Handler(d Daemon) http.Handler {
	mux := http.NewServeMux()
	q := d.Queue
	mux.HandleFunc("GET /queue", func(w http.ResponseWriter, r *http.Request) {
		ds, err := q.List()
		writeJSON(w, ds, err)
	})
	mux.HandleFunc("GET /queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		dl, ev, err := q.Get(r.PathValue("id"))
		writeJSON(w, QueueItem{Delivery: dl, Event: ev}, err)
	})
	mux.HandleFunc("POST /queue/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, struct{}{}, q.Retry(r.PathValue("id")))
	})
	mux.HandleFunc("POST /queue/{id}/drop", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, struct{}{}, q.Drop(r.PathValue("id")))
	})
	mux.HandleFunc("POST /queue-flush", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, flushReply{Due: q.Flush()}, nil)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.Status(), nil)
	})
	mux.HandleFunc("GET /monitors", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.Monitors.List(), nil)
	})
	act := func(f func(string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, struct{}{}, f(r.PathValue("name")))
		}
	}
	mux.HandleFunc("POST /monitors/{name}/pause", act(d.Monitors.Pause))
	mux.HandleFunc("POST /monitors/{name}/resume", act(d.Monitors.Resume))
	return mux
}

type flushReply struct {
	Due int `json:"due"`
}

// Listen binds a unix socket at path with mode (a stale socket of a killed
// daemon is removed first).
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	_ = os.Remove(path)
	// Connecting needs write permission on the socket: it is born with
	// the umask's and set to mode at once.
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// Serve serves srv on the unix socket l (at path) until the returned stop
// function shuts it down and removes the socket file. A serving error is
// passed to onErr.
func Serve(l net.Listener, path string, srv *http.Server, onErr func(error)) (stop func()) {
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			onErr(err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = os.Remove(path)
	}
}

// NewServer is the HTTP server of an admin socket.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}
