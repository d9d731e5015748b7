package smtpd

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenLoopback binds a TCP listener on each address (such as
// "127.0.0.1:25" and "[::1]:25") and returns them wrapped by WrapListener.
// An IPv6 address is skipped when the host has no IPv6 (address family not
// supported or ::1 not configured), provided another address was bound, so a
// host booted with ipv6.disable=1 still gets its IPv4 listener; the caller
// can log which addresses it got from each listener's Addr. Any other failure
// closes what was opened and returns the error.
func ListenLoopback(addrs []string) ([]net.Listener, error) {
	var lns []net.Listener
	var skipped []error
	closeAll := func() {
		for _, l := range lns {
			_ = l.Close() // nothing was served on them yet
		}
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			if isIPv6(a) && (errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL)) {
				skipped = append(skipped, err)
				continue
			}
			closeAll()
			return nil, fmt.Errorf("smtp listen %s: %w", a, err)
		}
		lns = append(lns, WrapListener(l))
	}
	if len(lns) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("smtp listen: %w", errors.Join(skipped...))
		}
		return nil, errors.New("smtp listen: no addresses")
	}
	return lns, nil
}

func isIPv6(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() == nil
}

// WrapListener tunes the TCP connections that l accepts: TCP_NODELAY, and
// TCP_QUICKACK re-armed before every read. Linux clears QUICKACK again after
// a while, and without it a client that writes its message in small segments
// (msmtp) waits out the 40 ms delayed ACK on the final dot (docs/clients.md §2).
// Use it for listeners from systemd socket activation; ListenLoopback and
// Serve apply it themselves. Other connection types pass through unchanged.
func WrapListener(l net.Listener) net.Listener {
	if _, ok := l.(*tunedListener); ok {
		return l
	}
	return &tunedListener{Listener: l}
}

type tunedListener struct{ net.Listener }

func (l *tunedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	// Go enables TCP_NODELAY by default; say so anyway, it is load-bearing.
	if err := tc.SetNoDelay(true); err != nil {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	return &tunedConn{TCPConn: tc, rc: rc}, nil
}

// tunedConn is a TCP connection that asks for immediate ACKs before each read.
type tunedConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

func (c *tunedConn) Read(p []byte) (int, error) {
	// A failure only costs latency, never correctness: ignore it.
	_ = c.rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
	return c.TCPConn.Read(p)
}
