package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/metrics"
)

// ControlSocket is the daemon's admin socket inside the state directory:
// `herald queue` talks to a running daemon through it. Mode 0600: only the
// daemon's user (and root) may act on the queue.
const ControlSocket = "control.sock"

// QueueItem is one delivery as `herald queue show` prints it.
type QueueItem struct {
	Delivery delivery.Delivery `json:"delivery"`
	Event    *event.Event      `json:"event,omitempty"`
}

// QueueAdmin is what the queue commands need; *delivery.Queue has it, and so
// does the control-socket client of a running daemon.
type QueueAdmin interface {
	List() ([]delivery.Delivery, error)
	Get(id string) (delivery.Delivery, *event.Event, error)
	Retry(id string) error
	Drop(id string) error
	// Flush makes every pending delivery due now (sendmail -q).
	Flush() (int, error)
}

func (a *App) serveControl(ctx context.Context) (func(), error) {
	path := filepath.Join(a.opt.Paths.StateDir, ControlSocket)
	_ = os.Remove(path) // a stale socket of a killed daemon
	// Connecting needs write permission on the socket: it is born without
	// it for others (umask) and narrowed to the owner at once.
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	q := a.queue
	mux.HandleFunc("GET /queue", func(w http.ResponseWriter, r *http.Request) {
		ds, err := q.List()
		writeJSON(w, ds, err)
	})
	mux.HandleFunc("GET /queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, ev, err := q.Get(r.PathValue("id"))
		writeJSON(w, QueueItem{Delivery: d, Event: ev}, err)
	})
	mux.HandleFunc("POST /queue/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, struct{}{}, q.Retry(r.PathValue("id")))
	})
	mux.HandleFunc("POST /queue-flush", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, flushReply{Due: q.Flush()}, nil)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := a.status()
		if err := a.health(); err != nil { // as /healthz (rescan.go)
			st.Healthy, st.Problem = false, err.Error()
		}
		writeJSON(w, st, nil)
	})
	mux.HandleFunc("POST /queue/{id}/drop", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, struct{}{}, q.Drop(r.PathValue("id")))
	})
	a.controlMonitors(mux)
	return a.serveSocket(l, path, "control socket", &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}), nil
}

// serveSocket serves srv on the unix socket l (at path) until the returned
// stop function shuts it down and removes the socket file.
func (a *App) serveSocket(l net.Listener, path, what string, srv *http.Server) func() {
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error(what, "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = os.Remove(path)
	}
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, delivery.ErrNotFound) {
			code = http.StatusNotFound
		} else if errors.Is(err, delivery.ErrInFlight) || strings.Contains(err.Error(), "already delivered") {
			code = http.StatusConflict
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
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

// DaemonStatus asks the daemon using stateDir for its status; an error
// when it does not run.
func DaemonStatus(stateDir string) (Status, error) {
	var st Status
	c, err := dialControl(stateDir)
	if errors.Is(err, fs.ErrPermission) {
		return st, fmt.Errorf("only root and the herald user may ask the daemon: %w", err)
	}
	if err != nil {
		return st, fmt.Errorf("herald is not running with state directory %s: %w", stateDir, err)
	}
	return st, c.do("GET", "/status", &st)
}

func dialControl(stateDir string) (controlClient, error) {
	sock := filepath.Join(stateDir, ControlSocket)
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return controlClient{}, err
	}
	conn.Close()
	return controlClient{&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}}, nil
}

// controlClient reaches a running daemon's control socket.
type controlClient struct{ c *http.Client }

// OpenQueueAdmin returns the queue of the daemon using stateDir: through its
// control socket when it runs, else a read-only view of its files (see
// queueadmin.go), which creates nothing. close releases it.
func OpenQueueAdmin(stateDir string) (adm QueueAdmin, close func(), err error) {
	if c, err := dialControl(stateDir); err == nil {
		return c, func() {}, nil
	}
	return offlineAdmin{delivery.OpenReadOnly(filepath.Join(stateDir, "queue")), stateDir}, func() {}, nil
}

func (c controlClient) do(method, path string, out any) error {
	req, err := http.NewRequest(method, "http://herald"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusNotFound {
				return fmt.Errorf("%s: %w", e.Error, delivery.ErrNotFound)
			}
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	return json.Unmarshal(body, out)
}

func (c controlClient) List() ([]delivery.Delivery, error) {
	var ds []delivery.Delivery
	return ds, c.do("GET", "/queue", &ds)
}

func (c controlClient) Get(id string) (delivery.Delivery, *event.Event, error) {
	var it QueueItem
	err := c.do("GET", "/queue/"+id, &it)
	return it.Delivery, it.Event, err
}

func (c controlClient) Retry(id string) error {
	return c.do("POST", "/queue/"+id+"/retry", &struct{}{})
}
func (c controlClient) Drop(id string) error { return c.do("POST", "/queue/"+id+"/drop", &struct{}{}) }

type flushReply struct {
	Due int `json:"due"`
}

func (c controlClient) Flush() (int, error) {
	var r flushReply
	err := c.do("POST", "/queue-flush", &r)
	return r.Due, err
}
