package peer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Who is on the other end of a local connection (docs/origin.md). For a
// loopback TCP connection the kernel knows: the client's socket is in this
// network namespace, with the client's address as its own, the server's as
// its peer, and the uid of the process that created it. herald asks for it
// by address through netlink sock_diag (diag.go), or else finds it in
// /proc/net/tcp (or tcp6). For a Unix socket, SO_PEERCRED says the same.
// Nothing the client sends is involved, so a local process cannot claim
// another uid; a peer on another host has no entry, and its uid is unknown.

// procNet are the tables TCPUID reads; a variable so that tests can point it
// at fixtures.
var procNet = []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"}

// TCPUID returns the uid that owns the client socket of the TCP connection
// between remote (the client) and local (this server), when the client runs
// on this host.
func TCPUID(local, remote net.Addr) (int, bool) {
	l, ok1 := addrPort(local)
	r, ok2 := addrPort(remote)
	if !ok1 || !ok2 {
		return 0, false
	}
	if uid, ok := diagUID(r, l); ok {
		return uid, true
	}
	// Without sock_diag (a sandbox without netlink sockets, a kernel
	// built without it): the tables.
	return procUID(l, r)
}

// TCPUIDFast is TCPUID through sock_diag only: one request, however many
// sockets exist. Reading the /proc tables costs milliseconds per lookup
// with thousands of sockets open, too much for an accept loop under a
// flood; callers there use this and leave the uid unknown without it.
func TCPUIDFast(local, remote net.Addr) (int, bool) {
	l, ok1 := addrPort(local)
	r, ok2 := addrPort(remote)
	if !ok1 || !ok2 {
		return 0, false
	}
	return diagUID(r, l)
}

// procUID is TCPUID through /proc/net/tcp{,6}.
func procUID(l, r netip.AddrPort) (int, bool) {
	for _, p := range procNet {
		if uid, ok := findSocketUID(p, r, l); ok {
			return uid, true
		}
	}
	return 0, false
}

// UnixUID returns the uid of the process at the other end of a Unix socket.
func UnixUID(c *net.UnixConn) (int, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return 0, false
	}
	return int(cred.Uid), true
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ip, ok := netip.AddrFromSlice(t.IP)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(t.Port)), true
}

// findSocketUID scans one /proc/net/tcp* table for the socket whose local
// address is sock and remote address is peer, and returns its uid column.
func findSocketUID(path string, sock, peer netip.AddrPort) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close() // read-only
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 512), 4096)
	first := true
	for sc.Scan() {
		if first { // the column titles
			first = false
			continue
		}
		fs := bytes.Fields(sc.Bytes())
		if len(fs) < 8 {
			continue
		}
		la, ok1 := parseProcAddr(fs[1])
		ra, ok2 := parseProcAddr(fs[2])
		if !ok1 || !ok2 || la != sock || ra != peer {
			continue
		}
		uid, err := strconv.Atoi(string(fs[7]))
		if err != nil || uid < 0 {
			return 0, false
		}
		return uid, true
	}
	return 0, false
}

// parseProcAddr parses "0100007F:1F90" (IPv4) or 32 hex digits ":" port
// (IPv6): the address as the kernel's 32-bit words in host byte order, the
// port in hex. IPv4-mapped IPv6 addresses are unmapped.
func parseProcAddr(b []byte) (netip.AddrPort, bool) {
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	raw := make([]byte, hex.DecodedLen(i))
	if _, err := hex.Decode(raw, b[:i]); err != nil {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(string(b[i+1:]), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	if len(raw) != 4 && len(raw) != 16 {
		return netip.AddrPort{}, false
	}
	// Each 32-bit word was printed as a host-order number.
	out := make([]byte, len(raw))
	for w := 0; w < len(raw); w += 4 {
		v := binary.BigEndian.Uint32(raw[w:])
		binary.NativeEndian.PutUint32(out[w:], v)
	}
	ip, _ := netip.AddrFromSlice(out)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}
