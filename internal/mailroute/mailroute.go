// Package mailroute decides where a mail goes by its envelope, as the MTA
// herald replaces would (docs/mta.md): recipients in one of this host's
// mail domains (or with no domain at all) are local, and their mail is a
// notification routed by the matchers; every other recipient is remote,
// and its mail is relayed to it as-is through the smarthost. It is pure:
// names in, decisions out.
package mailroute

import (
	"bytes"
	"net/mail"
	"slices"
	"strings"
)

// Local says which domains are this host's own.
type Local struct {
	// Names are this host's names: the short host name, the mail name
	// (/etc/mailname or the FQDN) and the configured hostname. localhost
	// and localhost.localdomain are always local.
	Names []string
}

// NewLocal returns the local domains for the given host names; empty and
// duplicate names are skipped, case is folded.
func NewLocal(names ...string) Local {
	l := Local{}
	for _, n := range append([]string{"localhost", "localhost.localdomain"}, names...) {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n != "" && !slices.Contains(l.Names, n) {
			l.Names = append(l.Names, n)
		}
	}
	return l
}

// IsLocal reports whether rcpt is delivered on this host: a bare name
// (root, postmaster, a user), name@ one of the local domains or
// name@[127.0.0.1]-style loopback literals.
func (l Local) IsLocal(rcpt string) bool {
	rcpt = strings.Trim(strings.TrimSpace(rcpt), "<>")
	i := strings.LastIndexByte(rcpt, '@')
	if i < 0 {
		return true
	}
	domain := strings.ToLower(strings.TrimSuffix(rcpt[i+1:], "."))
	switch domain {
	case "[127.0.0.1]", "[ipv6:::1]":
		return true
	}
	return slices.Contains(l.Names, domain)
}

// Split divides envelope recipients into local and remote ones, each in
// the order given, without duplicates (compared case-insensitively).
func (l Local) Split(rcpts []string) (local, remote []string) {
	seen := map[string]bool{}
	for _, r := range rcpts {
		r = strings.Trim(strings.TrimSpace(r), "<>")
		key := strings.ToLower(r)
		if r == "" || seen[key] {
			continue
		}
		seen[key] = true
		if l.IsLocal(r) {
			local = append(local, r)
		} else {
			remote = append(remote, r)
		}
	}
	return local, remote
}

// Remote returns the recipients of rcpts that are not local.
func (l Local) Remote(rcpts []string) []string {
	_, remote := l.Split(rcpts)
	return remote
}

// Decision is where one mail goes.
type Decision struct {
	// Local are the recipients on this host: the mail is a notification
	// for them, routed by the matchers.
	Local []string `json:"local"`
	// Remote are the recipients elsewhere.
	Remote []string `json:"remote"`
	// Relayed is true when Remote is not empty and a relay is configured:
	// the mail goes to them as-is through it. Without a relay, remote
	// recipients are treated like local ones (the mail is a notification).
	Relayed bool `json:"relayed"`
}

// Decide splits rcpts and says whether the remote part is relayed.
func (l Local) Decide(rcpts []string, haveRelay bool) Decision {
	local, remote := l.Split(rcpts)
	return Decision{Local: local, Remote: remote, Relayed: haveRelay && len(remote) > 0}
}

// MaxHops is how many Received header fields a mail may carry before
// herald stops relaying it: a mail going round between herald and another
// MTA gains one per pass. Postfix's hopcount_limit is 50; herald relays
// only what local programs submit, which carries few.
const MaxHops = 30

// Hops counts the Received header fields of a raw mail (its header block
// only).
func Hops(raw []byte) int {
	n := 0
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header
		}
		if len(line) > 9 && bytes.EqualFold(line[:9], []byte("received:")) {
			n++
		}
	}
	return n
}

// HeaderAddresses returns the addresses of the named header fields of a
// raw mail (To, Cc, Bcc), in order. Bare local names (To: root) are not
// RFC 5322 addresses, but sendmail -t takes them: a field that does not
// parse as an address list is split at commas.
func HeaderAddresses(raw []byte, fields ...string) []string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	var out []string
	for _, h := range fields {
		v := m.Header.Get(h)
		if v == "" {
			continue
		}
		if as, err := m.Header.AddressList(h); err == nil {
			for _, a := range as {
				out = append(out, a.Address)
			}
			continue
		}
		for _, part := range strings.Split(v, ",") {
			if a, err := mail.ParseAddress(part); err == nil {
				out = append(out, a.Address)
			} else if part = strings.Trim(strings.TrimSpace(part), "<>"); part != "" && bareName(part) {
				out = append(out, part)
			}
		}
	}
	return out
}

// Shown returns the envelope recipients a mail shows in its To and Cc
// header fields, or all of them when it has neither field: what may be
// recorded on its event. A recipient only the envelope names was a blind
// copy (Bcc, removed by sendmail -t) and stays hidden. A header name
// without a domain (To: root) shows the envelope's root@ANYTHING.
func Shown(raw []byte, rcpts []string) []string {
	hdr := HeaderAddresses(raw, "To", "Cc")
	if len(hdr) == 0 {
		return rcpts
	}
	var out []string
	for _, r := range rcpts {
		local, _, _ := strings.Cut(strings.Trim(r, "<>"), "@")
		for _, h := range hdr {
			if strings.EqualFold(h, strings.Trim(r, "<>")) || (!strings.Contains(h, "@") && strings.EqualFold(h, local)) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// bareName reports whether s can be a bare address: printable ASCII
// without spaces or quotes.
func bareName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' {
			return false
		}
	}
	return true
}
