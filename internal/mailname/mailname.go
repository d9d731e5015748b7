// Package mailname finds the fully qualified name this host uses for mail
// (docs/mta.md), the way Debian's MTAs do: /etc/mailname, else the FQDN.
// Both the daemon and the sendmail shim use it, so it is small: a few file
// reads, never DNS.
package mailname

import (
	"bufio"
	"bytes"
	"os"
	"strings"
)

// Files System reads on a real system.
const (
	File      = "/etc/mailname"
	HostsFile = "/etc/hosts"
)

// System finds this host's mail name the way Debian's MTAs do:
// the first line of mailnameFile, else the host name when it is fully
// qualified, else the canonical (first) name of the hosts-file line that
// lists the short host name with a domain (what `hostname -f` answers on
// a Debian host), else the short name itself. It never asks DNS: start-up
// must not wait for a resolver.
func System(mailnameFile, hostsFile, hostname string) string {
	if data, err := os.ReadFile(mailnameFile); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		if line = strings.TrimSpace(line); Valid(line) {
			return strings.ToLower(strings.TrimSuffix(line, "."))
		}
	}
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") && Valid(h) {
		return strings.ToLower(h)
	}
	short, _, _ := strings.Cut(hostname, ".")
	if data, err := os.ReadFile(hostsFile); err == nil {
		if canon := FromHosts(data, short); canon != "" {
			return canon
		}
	}
	return strings.ToLower(short)
}

// FromHosts returns the canonical (first) name of the first line of an
// /etc/hosts text that lists short, alone or with a domain, when that
// canonical name is fully qualified; "" otherwise.
func FromHosts(data []byte, short string) string {
	if short == "" {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		names := strings.Fields(line)
		if len(names) < 2 {
			continue
		}
		canon := names[1]
		for _, n := range names[1:] {
			first, _, _ := strings.Cut(n, ".")
			if strings.EqualFold(first, short) && strings.Contains(canon, ".") && Valid(canon) {
				return strings.ToLower(strings.TrimSuffix(canon, "."))
			}
		}
	}
	return ""
}

// Valid reports whether v is a DNS host name (labels of letters, digits,
// '-' and '_', at most 253 characters, an optional final dot).
func Valid(v string) bool {
	if v == "" || len(v) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(v, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ConfigValue returns the mail-name value of herald.cfg text, "" when the
// key is missing or the value is not a host name. A line scan, for the
// shim's start-up; herald check validates the file.
func ConfigValue(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "mail-name" && Valid(f[1]) {
			return strings.ToLower(strings.TrimSuffix(f[1], "."))
		}
	}
	return ""
}

// Sanitize reduces a host name to the characters a domain may hold (letters,
// digits, '-', '.', '_': the set Valid accepts), "localhost" when nothing is
// left. The shim's envelope and the mbox target's headers both use it.
func Sanitize(h string) string {
	h = strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') {
			return r
		}
		return -1
	}, h)
	if h == "" {
		return "localhost"
	}
	return h
}
