package peer

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// diagUID asks the kernel for one TCP socket by its exact addresses
// (netlink sock_diag, what ss(8) uses) and returns its owner's uid: sock is
// the socket's own address, peer the address it is connected to. It costs
// one request however many sockets exist, where the /proc/net/tcp table
// must be read whole. Any user may ask.
func diagUID(sock, peer netip.AddrPort) (int, bool) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Usec: 200000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, false
	}
	// A socket of either family can hold an IPv4 connection (an IPv6
	// socket as v4-mapped addresses).
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if fam == unix.AF_INET && !(sock.Addr().Is4() && peer.Addr().Is4()) {
			continue
		}
		if uid, ok := diagQuery(fd, fam, sock, peer); ok {
			return uid, true
		}
	}
	return 0, false
}

// Sizes of the netlink and inet_diag structures (linux/netlink.h,
// linux/inet_diag.h).
const (
	nlmsgHdrLen    = 16
	inetDiagReqLen = 56
	diagMsgUIDOff  = 64 // inet_diag_msg: 4 bytes, sockid (48), expires, rqueue, wqueue, then uid
)

func diagQuery(fd int, fam uint8, sock, peer netip.AddrPort) (int, bool) {
	req := make([]byte, nlmsgHdrLen+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // sequence
	r := req[nlmsgHdrLen:]
	r[0], r[1] = fam, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], sock.Port())
	binary.BigEndian.PutUint16(id[2:], peer.Port())
	putDiagAddr(id[4:20], sock.Addr(), fam)
	putDiagAddr(id[20:36], peer.Addr(), fam)
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE: find by address
	ne.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, false
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil || n < nlmsgHdrLen {
		return 0, false
	}
	l := int(ne.Uint32(buf[0:]))
	typ := ne.Uint16(buf[4:])
	if typ != unix.SOCK_DIAG_BY_FAMILY || l > n || l < nlmsgHdrLen+diagMsgUIDOff+4 {
		return 0, false // NLMSG_ERROR: no such socket
	}
	return int(ne.Uint32(buf[nlmsgHdrLen+diagMsgUIDOff:])), true
}

// putDiagAddr writes a into a sockid address field: 4 bytes for AF_INET,
// 16 (IPv4 as v4-mapped) for AF_INET6.
func putDiagAddr(dst []byte, a netip.Addr, fam uint8) {
	if fam == unix.AF_INET {
		b := a.Unmap().As4()
		copy(dst, b[:])
		return
	}
	b := a.As16()
	copy(dst, b[:])
}
