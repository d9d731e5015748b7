package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"herald/internal/control"
	"herald/internal/submit"
)

// serveSubmit serves the sendmail shim's submission socket,
// STATE/submit/submit.sock (internal/submit, docs/submit.md), until the
// returned stop is called. The directory decides who may connect: in a
// package install it is 0710 herald:herald-drop (tmpfiles, postinst), so
// only the setgid shim and root get through, as to the maildrop; a
// directory the daemon creates itself (a development run) is 0700, for
// its own user. The socket itself is 0666 inside it.
//
// A socket that cannot be served is logged, not fatal: the shim then uses
// the maildrop, as when the daemon is down.
func (a *App) serveSubmit() func() {
	dir := filepath.Join(a.opt.Paths.StateDir, submit.DirName)
	l, err := listenSubmit(dir)
	if err != nil {
		a.log.Error("submission socket not served; the sendmail shim uses the maildrop", "dir", dir, "err", err)
		return func() {}
	}
	srv := submit.New(a.spool, submit.Options{Logger: a.log})
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
			a.log.Error("submission socket", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			a.log.Warn("submission socket: submissions still running at shutdown", "err", err)
		}
	}
}

// listenSubmit binds the socket in dir, creating dir (0700) when missing.
// A directory writable by others is refused: they could put a socket of
// their own in the daemon's place and read the mail the shim sends.
func listenSubmit(dir string) (net.Listener, error) {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		st, err = os.Lstat(dir)
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is mode %v: writable by group or others (want 0710, or 0700)", dir, st.Mode().Perm())
	}
	// Anyone may connect to the socket; the directory says who may reach
	// it.
	return control.Listen(filepath.Join(dir, submit.SocketName), 0o666)
}
