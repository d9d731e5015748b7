package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

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

// NewMailq is the listing of the spool entries es and the queue's items,
// with the remote recipients of each mail for the local domains of local.
func NewMailq(es []spool.Entry, items []delivery.Item, local mailroute.Local) Mailq {
	m := Mailq{Spool: make([]MailqEntry, 0, len(es)), Queue: items}
	for _, e := range es {
		uid := e.Env.UID
		if u, ok := e.Submitter(); ok {
			uid = u // the submission socket's or SMTP's local client
		}
		m.Spool = append(m.Spool, MailqEntry{ID: e.ID, Size: e.Size, Received: e.Env.Received, From: e.Env.From,
			Recipients: e.Env.Recipients, UID: uid, Source: e.Env.Source, Event: e.Env.Kind == spool.KindEvent})
	}
	for _, it := range m.Queue {
		if r := local.Remote(it.Recipients); len(r) > 0 {
			if m.Remote == nil {
				m.Remote = map[string][]string{}
			}
			m.Remote[it.EventID] = r
		}
	}
	return m
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

type peerUIDKey struct{}

// mailqConcurrency bounds the mailq listings built at once.
const mailqConcurrency = 2

// MailqServer serves mailq's listing, built by list, to each user as that
// user may see it (Filter, by the uid the kernel reports for the socket).
func MailqServer(list func() (Mailq, error)) *http.Server {
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
		m, err := list()
		writeJSON(w, m.Filter(uid), err)
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if uid, err := peerUID(c); err == nil {
				return context.WithValue(ctx, peerUIDKey{}, uid)
			}
			return ctx
		}}
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

// DaemonMailq asks the daemon using stateDir for mailq's listing (as the
// calling user sees it). It returns ErrNotRunning when no daemon answers.
func DaemonMailq(stateDir string) (Mailq, error) {
	c := unixClient(filepath.Join(stateDir, MailqSocket))
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
