package config

import (
	"strings"

	"herald/internal/mailname"
)

// MTA holds the herald.cfg settings that make herald behave like the MTA it
// replaces (docs/mta.md): the mail name used in HELO and for envelope
// senders, and how the relay's certificate is checked.
type MTA struct {
	// MailName is the mail-name key ("" = not set: SystemMailName applies,
	// see ResolvedMailName and internal/mailname).
	MailName string `json:"mail-name,omitempty"`
	// RelayCAFile is a PEM file of CA certificates the relay's certificate
	// must chain to ("" = the system's roots).
	RelayCAFile string `json:"relay-ca-file,omitempty"`
	// RelayNoVerify turns certificate verification off (relay-verify no).
	RelayNoVerify bool `json:"relay-no-verify,omitempty"`
}

func init() {
	daemonKeys["mail-name"] = daemonKey{parse: func(d *Daemon, v string, _ bool) string {
		if !mailname.Valid(v) || !strings.Contains(strings.TrimSuffix(v, "."), ".") {
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
// envelope addresses: mail-name when set, else mailname.System.
func (d *Daemon) ResolvedMailName() string {
	if d.MailName != "" {
		return d.MailName
	}
	return mailname.System(mailname.File, mailname.HostsFile, d.Hostname)
}
