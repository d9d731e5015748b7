package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"herald/internal/peer"
)

// DNS rebinding (docs/limits.md). A web page on evil.example can make its
// own name resolve to 127.0.0.1; the browser then sends the page's requests
// to herald's loopback port as same-origin requests, with "Host:
// evil.example". So the API answers only requests whose Host is an IP
// literal (a rebinding attack always uses a name), localhost or a name
// below .localhost (RFC 6761: resolved to loopback by the resolver and by
// browsers themselves), or a name the administrator listed (http-host);
// anything else gets 421 Misdirected Request. Unix-socket peers are exempt:
// no browser reaches them.
//
// State-changing endpoints (events, push) also refuse a request whose
// Origin header names another host or is "null" (a sandboxed or file://
// page): browsers send Origin on cross-origin requests even where they send
// no Sec-Fetch-Site.

// hostAllowed reports whether a Host header value names this server.
func (s *Server) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, h := range s.opt.Hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// originAllowed reports whether a request's Origin header, if any, names a
// host this server answers to.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false // "null" and garbage
	}
	return s.hostAllowed(u.Host)
}

// stateChanging reports whether r's endpoint changes state (submits).
func stateChanging(r *http.Request) bool {
	return isPushPath(r.URL.Path) || r.URL.Path == "/api/v1/events"
}

// unixPeer reports whether r came over a Unix socket.
func unixPeer(r *http.Request) bool {
	_, ok := r.Context().Value(remoteKey{}).(*net.UnixAddr)
	return ok
}

// misdirected answers 421 for a Host this server does not answer to.
func (s *Server) misdirected(w http.ResponseWriter, r *http.Request) {
	const msg = "misdirected request: unknown Host (add the name to http-host in herald.cfg)"
	if isPushPath(r.URL.Path) {
		writePush(w, http.StatusMisdirectedRequest, msg)
		return
	}
	writeError(w, http.StatusMisdirectedRequest, msg)
}

// clientUID returns the uid of a local client as the kernel reports it
// (internal/peer), or nil when it is not known.
func clientUID(r *http.Request) *int {
	var uid int
	var ok bool
	switch a := r.Context().Value(remoteKey{}).(type) {
	case *net.UnixAddr:
		if c, isUnix := r.Context().Value(connKey{}).(*net.UnixConn); isUnix {
			uid, ok = peer.UnixUID(c)
		}
	case *net.TCPAddr:
		if local, isAddr := r.Context().Value(http.LocalAddrContextKey).(net.Addr); isAddr {
			uid, ok = peer.TCPUID(local, a)
		}
	}
	if !ok {
		return nil
	}
	return &uid
}
