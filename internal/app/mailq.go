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
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/config"
	"herald/internal/delivery"
	"herald/internal/mailroute"
	"herald/internal/spool"
)

// MailqSocket is the daemon's socket for mailq inside the state directory.
// Unlike the control socket any local user may connect (mode 0666), as any
// user may run Postfix's mailq; the daemon asks the kernel who connected
// (SO_PEERCRED) and shows a user only what that user submitted. root and
// the daemon's own user see everything.
const MailqSocket = "mailq.sock"

// MailqEntry is one spool entry (accepted, not yet processed) in mailq.
type MailqEntry struct {
	ID         string    `json:"id"`
	Size       int64     `json:"size"`
	Received   time.Time `json:"received"`
	From       string    `json:"from"`
	Recipients []string  `json:"recipients,omitempty"`
	UID        int       `json:"uid"`
	Source     string    `json:"source"`
	Event      bool      `json:"event,omitempty"`
}

// Mailq is what mailq lists: the spool, then the deliveries not yet done.
type Mailq struct {
	Spool []MailqEntry    `json:"spool"`
	Queue []delivery.Item `json:"queue"`
	// Remote are the remote recipients of each queued mail (by event ID):
	// those its herald-relay delivery sends to.
	Remote map[string][]string `json:"remote,omitempty"`
	Notes  []string            `json:"notes,omitempty"`
}

// withRemote fills m.Remote for the local domains of local.
func (m *Mailq) withRemote(local mailroute.Local) {
	for _, it := range m.Queue {
		if r := local.Remote(it.Recipients); len(r) > 0 {
			if m.Remote == nil {
				m.Remote = map[string][]string{}
			}
			m.Remote[it.EventID] = r
		}
	}
}

// mailqEntries converts spool entries for mailq.
func mailqEntries(es []spool.Entry) []MailqEntry {
	out := make([]MailqEntry, 0, len(es))
	for _, e := range es {
		uid := e.Env.UID
		if u, ok := e.Submitter(); ok {
			uid = u // the submission socket's or SMTP's local client
		}
		out = append(out, MailqEntry{ID: e.ID, Size: e.Size, Received: e.Env.Received, From: e.Env.From,
			Recipients: e.Env.Recipients, UID: uid, Source: e.Env.Source, Event: e.Env.Kind == spool.KindEvent})
	}
	return out
}

// Filter keeps what uid submitted, unless uid may see everything.
func (m Mailq) Filter(uid int) Mailq {
	if uid == 0 || uid == os.Getuid() {
		return m
	}
	out := Mailq{Notes: m.Notes, Remote: m.Remote}
	for _, e := range m.Spool {
		if e.UID == uid {
			out.Spool = append(out.Spool, e)
		}
	}
	for _, it := range m.Queue {
		if it.UID == uid {
			out.Queue = append(out.Queue, it)
		}
	}
	return out
}

// mailq collects the listing of a running daemon.
func (a *App) mailq() (Mailq, error) {
	es, err := a.spool.Pending()
	if err != nil {
		return Mailq{}, err
	}
	items, err := a.queue.Items()
	if err != nil {
		return Mailq{}, err
	}
	m := Mailq{Spool: mailqEntries(es), Queue: items}
	m.withRemote(a.Settings().LocalDomains())
	return m, nil
}

type peerUIDKey struct{}

// mailqConcurrency bounds the mailq listings built at once.
const mailqConcurrency = 2

// serveMailq serves MailqSocket until the returned stop is called.
func (a *App) serveMailq() (func(), error) {
	path := filepath.Join(a.opt.Paths.StateDir, MailqSocket)
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, err
	}
	// Any local user may connect: at most mailqConcurrency listings are
	// built at once (each reads the spool and the queue's event files), the
	// rest wait their turn for a while, then are told to try again.
	slots := make(chan struct{}, mailqConcurrency)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /mailq", func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-time.After(5 * time.Second):
			http.Error(w, "busy: try again", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
		uid, ok := r.Context().Value(peerUIDKey{}).(int)
		if !ok {
			writeJSON(w, nil, errors.New("cannot tell who is asking"))
			return
		}
		m, err := a.mailq()
		writeJSON(w, m.Filter(uid), err)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if uid, err := peerUID(c); err == nil {
				return context.WithValue(ctx, peerUIDKey{}, uid)
			}
			return ctx
		}}
	return a.serveSocket(l, path, "mailq socket", srv), nil
}

// peerUID is the uid of the process at the other end of a unix socket.
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix socket")
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// ErrNotRunning says no daemon answers on the state directory.
var ErrNotRunning = errors.New("herald is not running")

// DaemonMailq asks the daemon using stateDir for mailq's listing (as the
// calling user sees it). It returns ErrNotRunning when no daemon answers.
func DaemonMailq(stateDir string) (Mailq, error) {
	sock := filepath.Join(stateDir, MailqSocket)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	var m Mailq
	resp, err := c.Get("http://herald/mailq")
	if err != nil {
		return m, fmt.Errorf("%w (%v)", ErrNotRunning, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return m, err
	}
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("daemon answered %s: %s", resp.Status, body)
	}
	return m, json.Unmarshal(body, &m)
}

// OfflineMailq reads the listing from the files while no daemon runs. It
// creates nothing; reading the spool or queue needs the right to (root or
// herald), else the error says permission denied.
func OfflineMailq(p Paths) (Mailq, error) {
	var m Mailq
	dir, err := SpoolDirFor(p)
	if err != nil {
		return m, err
	}
	es, err := spool.ListDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // no spool yet: nothing queued
		return m, err
	}
	m.Spool = mailqEntries(es)
	items, err := delivery.OpenReadOnly(filepath.Join(p.StateDir, "queue")).Items()
	if err != nil {
		return m, err
	}
	m.Queue = items
	// The local domains, for the relay's recipients: herald.cfg when it
	// is readable and valid, else the defaults.
	d := config.DefaultDaemon()
	if ld, err := config.LoadDaemon(filepath.Join(p.ConfigDir, "herald.cfg")); err == nil && !p.Embedded {
		d = ld
	}
	resolveMailName(d)
	m.withRemote((&Settings{Daemon: d}).LocalDomains())
	m.Notes = append(m.Notes, "herald is not running: nothing is being delivered")
	return m, nil
}
