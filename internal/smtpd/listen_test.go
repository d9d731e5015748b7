package smtpd

// Tests of who may connect and how the listeners are made (allow.go, listen.go).

import (
	"bufio"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeRemoteListener makes accepted connections claim a remote address.
type fakeRemoteListener struct {
	net.Listener
	remote net.Addr
}

type fakeRemoteConn struct {
	net.Conn
	remote net.Addr
}

func (c *fakeRemoteConn) RemoteAddr() net.Addr { return c.remote }

func TestRefusedPeer(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	cases := []struct {
		name    string
		allow   []netip.Prefix
		allowed bool
	}{
		{"not allowed", nil, false},
		{"other network allowed", []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, false},
		{"allowed", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sub := &fakeSub{}
			ts := serveOn(t, sub, Options{Allow: tc.allow}, &fakeRemoteListener{Listener: l, remote: remote})
			c := dial(t, ts.addr)
			if !tc.allowed {
				// Even a client that talks first gets the 554.
				c.send("EHLO c\r\n")
				c.expect(554, "5.7.1")
				c.expectClosed()
				if !strings.Contains(ts.log.String(), "192.0.2.7") {
					t.Errorf("refusal not logged:\n%s", ts.log)
				}
				return
			}
			c.expect(220, "herald.test")
			c.send("EHLO c\r\n")
			c.expect(250, "")
			c.mail("a@b", []string{"c@d"}, "x\r\n")
			if got := sub.only(t); got.env.Remote != "192.0.2.7:40000" {
				t.Fatalf("remote %q", got.env.Remote)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		addr  net.Addr
		allow []netip.Prefix
		want  bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("127.255.255.254")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("::1")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1")}, nil, false},
		{&net.TCPAddr{IP: net.ParseIP("0.0.0.0")}, nil, false},
		{&net.TCPAddr{IP: net.ParseIP("::")}, nil, false},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3")}, nil, false},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3")}, allow, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3")}, allow, true},
		{&net.TCPAddr{IP: net.ParseIP("10.2.0.1")}, allow, false},
		{&net.TCPAddr{IP: net.ParseIP("fd12::1"), Zone: "eth0"}, allow, true},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, allow, false},
		{&net.TCPAddr{}, allow, false},
		{&net.UnixAddr{Name: "@", Net: "unix"}, nil, true},
		{stdioAddr{}, allow, false},
	}
	for _, tc := range cases {
		if got := Allowed(tc.addr, tc.allow); got != tc.want {
			t.Errorf("Allowed(%v, %v) = %v, want %v", tc.addr, tc.allow, got, tc.want)
		}
	}
}

func TestOtherLoopbackAddressAllowed(t *testing.T) {
	sub := &fakeSub{}
	ts := start(t, sub, Options{}, "127.0.0.1:0")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: wait}
	nc, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	c := &client{t: t, c: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { _ = nc.Close() })
	c.expect(220, "herald.test")
	c.send("HELO c\r\n")
	c.expect(250, "")
	c.mail("a@b", []string{"c@d"}, "x\r\n")
	if got := sub.only(t); !strings.HasPrefix(got.env.Remote, "127.0.0.2:") {
		t.Fatalf("remote %q", got.env.Remote)
	}
}

func TestBothLoopbackFamilies(t *testing.T) {
	sub := &fakeSub{}
	lns, err := ListenLoopback([]string{"127.0.0.1:0", "[::1]:0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(lns) != 2 {
		t.Fatalf("got %d listeners", len(lns))
	}
	served2 := make(chan error, 1)
	// Registered first, so it runs after serveOn's cleanup shut the server.
	t.Cleanup(func() {
		select {
		case err := <-served2:
			if err != nil {
				t.Errorf("second Serve: %v", err)
			}
		case <-time.After(wait):
			t.Error("second Serve did not return")
		}
	})
	ts := serveOn(t, sub, Options{}, lns[0])
	go func() { served2 <- ts.Serve(lns[1]) }()
	for _, l := range lns {
		if _, ok := l.(*tunedListener); !ok {
			t.Errorf("listener %v is not tuned", l.Addr())
		}
		c := greet(t, l.Addr().String())
		c.mail("a@b", []string{"c@d"}, "via "+l.Addr().String()+"\r\n")
	}
	got := sub.submissions()
	if len(got) != 2 || !strings.HasPrefix(got[0].env.Remote, "127.0.0.1:") || !strings.HasPrefix(got[1].env.Remote, "[::1]:") {
		t.Fatalf("got %+v", got)
	}
}

func TestListenLoopbackErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The port is taken: error, and the first listener is closed again.
	if _, err := ListenLoopback([]string{"[::1]:0", l.Addr().String()}); err == nil {
		t.Fatal("ListenLoopback on a used port succeeded")
	}
	if _, err := ListenLoopback(nil); err == nil {
		t.Fatal("ListenLoopback with no addresses succeeded")
	}
	w := WrapListener(l)
	if WrapListener(w) != w {
		t.Fatal("WrapListener wraps twice")
	}
}

func TestSocketActivationListener(t *testing.T) {
	// systemd hands the daemon an inherited socket; net.FileListener turns
	// it into a listener exactly as go-systemd's activation package does.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := tl.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.Close(); err != nil {
		t.Fatal(err)
	}
	fl, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w := WrapListener(fl)
	if WrapListener(w) != w {
		t.Fatal("WrapListener wrapped a wrapped listener again")
	}
	// The wrapped listener hands out tuned connections.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := w.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	nc, err := net.DialTimeout("tcp", w.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := <-accepted
	if _, ok := c.(*tunedConn); !ok {
		t.Fatalf("accepted %T, want *tunedConn", c)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	sub := &fakeSub{}
	ts := serveOn(t, sub, Options{}, w)
	cl := greet(t, ts.addr)
	cl.mail("a@b", []string{"c@d"}, "activated\r\n")
	if got := sub.only(t); string(got.body) != "activated\r\n" {
		t.Fatalf("got %+v", got)
	}
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smtp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	sub := &fakeSub{}
	// Unix-socket peers pass the peer check: the socket's file mode guards it.
	ts := serveOn(t, sub, Options{}, l)
	nc, err := net.DialTimeout("unix", path, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	c := &client{t: t, c: nc, r: bufio.NewReader(nc)}
	c.expect(220, "herald.test")
	c.send("HELO local\r\n")
	c.expect(250, "")
	c.mail("a@b", []string{"c@d"}, "over a unix socket\r\n")
	c.send("QUIT\r\n")
	c.expect(221, "")
	c.expectClosed()
	if got := sub.only(t); string(got.body) != "over a unix socket\r\n" || ts.addr != path {
		t.Fatalf("got %+v", got)
	}
}

func TestClose(t *testing.T) {
	started := make(chan struct{}, 1)
	sub := &fakeSub{started: started}
	ts := start(t, sub, Options{}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhalf\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	<-started
	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.expectClosed()
	select {
	case err := <-ts.served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.served <- nil
	case <-time.After(wait):
		t.Fatal("Serve did not return after Close")
	}
	if n := len(sub.submissions()); n != 0 {
		t.Fatalf("%d messages submitted", n)
	}
	// Serving again after Close returns at once and closes the listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Serve(l); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("listener still open after Serve on a closed server")
	}
}

func (l *fakeRemoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &fakeRemoteConn{Conn: c, remote: l.remote}, nil
}
