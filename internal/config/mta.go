package config

import (
	"bufio"
	"os"
	"strings"
)

// MTA holds the herald.cfg settings that make herald behave like the MTA it
// replaces (docs/mta.md): the mail name used in HELO and for envelope
// senders, and how the relay's certificate is checked.
type MTA struct {
	// MailName is the mail-name key ("" = not set: SystemMailName applies,
	// see ResolvedMailName).
	MailName string `json:"mail-name,omitempty"`
	// RelayCAFile is a PEM file of CA certificates the relay's certificate
	// must chain to ("" = the system's roots).
	RelayCAFile string `json:"relay-ca-file,omitempty"`
	// RelayNoVerify turns certificate verification off (relay-verify no).
	RelayNoVerify bool `json:"relay-no-verify,omitempty"`
}

func init() {
	daemonKeys["mail-name"] = daemonKey{parse: func(d *Daemon, v string, _ bool) string {
		if !validDNSName(v) || !strings.Contains(strings.TrimSuffix(v, "."), ".") {
			return "must be a fully qualified host name such as host.example.com"
		}
		d.MailName = strings.ToLower(strings.TrimSuffix(v, "."))
		return ""
	}}
	daemonKeys["relay-ca-file"] = daemonKey{parse: absPathKey(func(d *Daemon) *string { return &d.RelayCAFile })}
	daemonKeys["relay-verify"] = daemonKey{parse: func(d *Daemon, v string, _ bool) string {
		b, ok := parseBool(v)
		if !ok {
			return "must be yes or no"
		}
		d.RelayNoVerify = !b
		return ""
	}}
}

// ResolvedMailName is the name herald uses in HELO and to qualify bare
// envelope addresses: mail-name when set, else SystemMailName.
func (d *Daemon) ResolvedMailName() string {
	if d.MailName != "" {
		return d.MailName
	}
	return SystemMailName(MailNameFile, HostsFile, d.Hostname)
}

// Files SystemMailName reads (variables for tests).
var (
	MailNameFile = "/etc/mailname"
	HostsFile    = "/etc/hosts"
)

// SystemMailName finds this host's mail name the way Debian's MTAs do:
// the first line of mailnameFile, else the host name when it is fully
// qualified, else the canonical (first) name of the hosts-file line that
// lists the short host name with a domain (what `hostname -f` answers on
// a Debian host), else the short name itself. It never asks DNS: start-up
// must not wait for a resolver.
func SystemMailName(mailnameFile, hostsFile, hostname string) string {
	if data, err := os.ReadFile(mailnameFile); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		if line = strings.TrimSpace(line); validDNSName(line) {
			return strings.ToLower(strings.TrimSuffix(line, "."))
		}
	}
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") && validDNSName(h) {
		return strings.ToLower(h)
	}
	short, _, _ := strings.Cut(hostname, ".")
	if f, err := os.Open(hostsFile); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			names := strings.Fields(line)
			if len(names) < 2 {
				continue
			}
			canon := names[1]
			for _, n := range names[1:] {
				first, _, _ := strings.Cut(n, ".")
				if strings.EqualFold(first, short) && strings.Contains(canon, ".") && validDNSName(canon) {
					return strings.ToLower(canon)
				}
			}
		}
	}
	return strings.ToLower(short)
}
