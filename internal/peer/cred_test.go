package peer

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0019":                         "0.0.0.0:25",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:9C40": "127.0.0.1:40000", // v4-mapped
	} {
		got, ok := parseProcAddr([]byte(in))
		if !ok || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseProcAddr(%s) = %v %v, want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "zz00007F:0019", "0100007F:zz", "01007F:0019"} {
		if _, ok := parseProcAddr([]byte(bad)); ok {
			t.Errorf("parseProcAddr(%q) accepted", bad)
		}
	}
}

// accepted returns the server side of one connection a client makes to a
// fresh listener on addr; dial makes the connection.
func accepted(t *testing.T, network, addr string, dial func(addr string)) net.Conn {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go dial(l.Addr().String())
	if tl, ok := l.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if ul, ok := l.(*net.UnixListener); ok {
		_ = ul.SetDeadline(time.Now().Add(10 * time.Second))
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTCPUIDOwnProcess(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		c := accepted(t, "tcp", addr, func(a string) {
			cc, err := net.Dial("tcp", a)
			if err == nil {
				t.Cleanup(func() { cc.Close() })
			}
		})
		uid, ok := TCPUID(c.LocalAddr(), c.RemoteAddr())
		if !ok || uid != os.Geteuid() {
			t.Errorf("%s: uid %d %v, want %d", addr, uid, ok, os.Geteuid())
		}
	}
	// A peer that is not on this host (no socket in the table).
	far := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1234}
	if _, ok := TCPUID(&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 25}, far); ok {
		t.Error("a uid for a peer on another host")
	}
}

// A client running as another user is told apart: the uid is the kernel's,
// not the server's. The client is bash's /dev/tcp run as nobody.
func TestTCPUIDOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs as root (make test does) to start a client as nobody")
	}
	sh, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found: apt-get install bash")
	}
	const nobody = 65534
	c := accepted(t, "tcp", "127.0.0.1:0", func(a string) {
		host, port, _ := net.SplitHostPort(a)
		cmd := exec.Command(sh, "-c", "exec 3<>/dev/tcp/"+host+"/"+port+"; read -r _")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	})
	uid, ok := TCPUID(c.LocalAddr(), c.RemoteAddr())
	if !ok || uid != nobody {
		t.Fatalf("uid %d %v, want %d", uid, ok, nobody)
	}
}

func TestUnixUID(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	c := accepted(t, "unix", sock, func(a string) {
		cc, err := net.Dial("unix", a)
		if err == nil {
			t.Cleanup(func() { cc.Close() })
		}
	})
	uid, ok := UnixUID(c.(*net.UnixConn))
	if !ok || uid != os.Geteuid() {
		t.Fatalf("uid %d %v", uid, ok)
	}
}

// The table scan stops at the matching line and ignores malformed ones.
func TestFindSocketUIDFixture(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tcp")
	lines := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: garbage\n" +
		"   1: 0100007F:9C40 0100007F:0019 01 00000000:00000000 00:00000000 00000000  1000        0 1 1\n" +
		"   2: 0100007F:0019 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   107        0 2 1\n"
	if err := os.WriteFile(p, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	uid, ok := findSocketUID(p, netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:25"))
	if !ok || uid != 1000 {
		t.Fatalf("uid %d %v", uid, ok)
	}
}

// sock_diag and the /proc tables agree, for both families, and neither
// invents a socket that is not there.
func TestDiagAgreesWithProc(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		c := accepted(t, "tcp", addr, func(a string) {
			cc, err := net.Dial("tcp", a)
			if err == nil {
				t.Cleanup(func() { cc.Close() })
			}
		})
		l, _ := addrPort(c.LocalAddr())
		r, _ := addrPort(c.RemoteAddr())
		du, dok := diagUID(r, l)
		pu, pok := procUID(l, r)
		if !dok || !pok || du != pu || du != os.Geteuid() {
			t.Errorf("%s: sock_diag %d %v, /proc %d %v", addr, du, dok, pu, pok)
		}
		gone := netip.AddrPortFrom(r.Addr(), r.Port()+1)
		if _, ok := diagUID(gone, l); ok {
			t.Errorf("%s: sock_diag found a socket that does not exist", addr)
		}
	}
}
