package app

import (
	"context"
	"net"
	"net/http"
	"path/filepath"

	"herald/internal/control"
	"herald/internal/delivery"
)

// serveControl serves the control socket (internal/control) on the
// daemon's queue, monitors and status until the returned stop is called.
func (a *App) serveControl(context.Context) (func(), error) {
	path := filepath.Join(a.opt.Paths.StateDir, control.Socket)
	l, err := control.Listen(path, 0o600)
	if err != nil {
		return nil, err
	}
	h := control.Handler(control.Daemon{Queue: a.queue, Monitors: a.monitors, Status: a.controlStatus})
	return a.serveSocket(l, path, "control socket", control.NewServer(h)), nil
}

// controlStatus is the daemon's status with its health as /healthz says it
// (rescan.go).
func (a *App) controlStatus() control.Status {
	st := a.status()
	if err := a.health(); err != nil {
		st.Healthy, st.Problem = false, err.Error()
	}
	return st
}

// serveSocket serves srv on the unix socket l (at path) until the returned
// stop function shuts it down and removes the socket file; what names the
// socket in the log.
func (a *App) serveSocket(l net.Listener, path, what string, srv *http.Server) func() {
	return control.Serve(l, path, srv, func(err error) { a.log.Error(what, "err", err) })
}

// OpenQueueAdmin returns the queue of the daemon using stateDir: through its
// control socket when it runs, else a read-only view of its files (see
// queueadmin.go), which creates nothing. close releases it.
func OpenQueueAdmin(stateDir string) (adm control.QueueAdmin, close func(), err error) {
	if c, err := control.Dial(stateDir); err == nil {
		return c, func() {}, nil
	}
	return offlineAdmin{delivery.OpenReadOnly(filepath.Join(stateDir, "queue")), stateDir}, func() {}, nil
}
