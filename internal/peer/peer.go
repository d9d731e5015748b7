// Package peer holds herald's one rule for who may talk to its listeners:
// loopback peers (all of 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6),
// Unix-socket peers, and addresses inside the prefixes an admin allowed.
// The SMTP listener and the HTTP API both ask it.
package peer

import (
	"net"
	"net/netip"
)

// Allowed reports whether remote may use a listener. Anything that is not
// loopback, a Unix socket or inside allow, including an address of an
// unknown kind, is refused.
func Allowed(remote net.Addr, allow []netip.Prefix) bool {
	var ip netip.Addr
	switch a := remote.(type) {
	case *net.UnixAddr:
		// Whoever reached a Unix socket passed its file permissions.
		return true
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.IPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if remote == nil {
			return false
		}
		ap, err := netip.ParseAddrPort(remote.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	return AllowedAddr(ip, allow)
}

// AllowedAddr is Allowed for an IP address.
func AllowedAddr(ip netip.Addr, allow []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	// A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d; zones do not
	// matter for the prefix test.
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() {
		return true
	}
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
