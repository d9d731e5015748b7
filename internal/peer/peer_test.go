package peer

import (
	"net"
	"net/netip"
	"testing"
)

func TestAllowed(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cases := []struct {
		addr  net.Addr
		allow []netip.Prefix
		want  bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("127.8.9.10")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("::1")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1")}, nil, true},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7")}, nil, false},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7")}, lan, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7")}, lan, true},
		{&net.TCPAddr{IP: net.ParseIP("198.51.100.1")}, lan, false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, nil, false},
		{&net.UnixAddr{Name: "/run/x.sock"}, nil, true},
		{&net.IPAddr{IP: net.ParseIP("10.0.0.1")}, nil, false},
		{nil, nil, false},
	}
	for _, c := range cases {
		if got := Allowed(c.addr, c.allow); got != c.want {
			t.Errorf("Allowed(%v, %v) = %v, want %v", c.addr, c.allow, got, c.want)
		}
	}
	if AllowedAddr(netip.Addr{}, nil) {
		t.Error("the zero address was allowed")
	}
}
