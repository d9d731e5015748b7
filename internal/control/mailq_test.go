package control

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"herald/internal/delivery"
)

func TestMailqFilter(t *testing.T) {
	m := Mailq{
		Spool: []MailqEntry{{ID: "s1", UID: 1000}, {ID: "s2", UID: 0}},
		Queue: []delivery.Item{{EventID: "q1", UID: 1000}, {EventID: "q2", UID: -1}, {EventID: "q3", UID: 1001}},
	}
	ids := func(m Mailq) (out []string) {
		for _, e := range m.Spool {
			out = append(out, e.ID)
		}
		for _, it := range m.Queue {
			out = append(out, it.EventID)
		}
		return out
	}
	tests := []struct {
		uid  int
		want int
	}{{0, 5}, {os.Getuid(), 5}, {1000, 2}, {1001, 1}, {4242, 0}}
	for _, tt := range tests {
		got := ids(m.Filter(tt.uid))
		if os.Getuid() == tt.uid || tt.uid == 0 {
			if len(got) != 5 {
				t.Errorf("uid %d (all-seeing) sees %v", tt.uid, got)
			}
			continue
		}
		if len(got) != tt.want {
			t.Errorf("uid %d sees %v, want %d entries", tt.uid, got, tt.want)
		}
		for _, e := range m.Filter(tt.uid).Spool {
			if e.UID != tt.uid {
				t.Errorf("uid %d sees uid %d's spool entry", tt.uid, e.UID)
			}
		}
	}
}

// peerUID reports the uid of the process at the other end of a unix
// socket: this test's own.
func TestPeerUID(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("unix", sock)
		if err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uid, err := peerUID(c)
	if err != nil || uid != os.Getuid() {
		t.Fatalf("peerUID = %d, %v; want %d", uid, err, os.Getuid())
	}
}

// The mailq socket answers the listing as the connecting user may see it.
func TestMailqServer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MailqSocket)
	l, err := Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	m := Mailq{Spool: []MailqEntry{{ID: "s1", UID: os.Getuid()}, {ID: "s2", UID: 4242}},
		Queue: []delivery.Item{{EventID: "q1", UID: 4243}}}
	stop := Serve(l, path, MailqServer(func() (Mailq, error) { return m, nil }), func(err error) { t.Errorf("serve: %v", err) })
	defer stop()
	got, err := DaemonMailq(dir)
	if err != nil {
		t.Fatal(err)
	}
	// This test's user is the daemon's: it sees everything.
	if len(got.Spool) != 2 || len(got.Queue) != 1 {
		t.Fatalf("listing %+v, want all of it", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode: %v, %v", fi, err)
	}
}
