package app

import (
	"errors"
	"io/fs"
	"path/filepath"

	"herald/internal/config"
	"herald/internal/control"
	"herald/internal/delivery"
	"herald/internal/spool"
)

// mailq collects the listing of a running daemon.
func (a *App) mailq() (control.Mailq, error) {
	es, err := a.spool.Pending()
	if err != nil {
		return control.Mailq{}, err
	}
	items, err := a.queue.Items()
	if err != nil {
		return control.Mailq{}, err
	}
	return control.NewMailq(es, items, a.Settings().LocalDomains()), nil
}

// serveMailq serves control.MailqSocket until the returned stop is called.
func (a *App) serveMailq() (func(), error) {
	path := filepath.Join(a.opt.Paths.StateDir, control.MailqSocket)
	l, err := control.Listen(path, 0o666)
	if err != nil {
		return nil, err
	}
	return a.serveSocket(l, path, "mailq socket", control.MailqServer(a.mailq)), nil
}

// OfflineMailq reads the listing from the files while no daemon runs. It
// creates nothing; reading the spool or queue needs the right to (root or
// herald), else the error says permission denied.
func OfflineMailq(p Paths) (control.Mailq, error) {
	dir, err := SpoolDirFor(p)
	if err != nil {
		return control.Mailq{}, err
	}
	es, err := spool.ListDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // no spool yet: nothing queued
		return control.Mailq{}, err
	}
	items, err := delivery.OpenReadOnly(filepath.Join(p.StateDir, "queue")).Items()
	if err != nil {
		return control.Mailq{}, err
	}
	// The local domains, for the relay's recipients: herald.cfg when it
	// is readable and valid, else the defaults.
	d := config.DefaultDaemon()
	if ld, err := config.LoadDaemon(filepath.Join(p.ConfigDir, "herald.cfg")); err == nil && !p.Embedded {
		d = ld
	}
	resolveMailName(d)
	m := control.NewMailq(es, items, (&Settings{Daemon: d}).LocalDomains())
	m.Notes = append(m.Notes, "herald is not running: nothing is being delivered")
	return m, nil
}
