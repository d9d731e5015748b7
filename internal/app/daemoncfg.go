package app

import (
	"path/filepath"

	"herald/internal/config"
)

// LoadDaemonSettings reads herald.cfg alone (with the embedded default's
// listeners when p is embedded), for commands that need the daemon's
// addresses but must not read notifications.cfg's private file: `herald
// notify` run by an unprivileged user, who may not read it.
func LoadDaemonSettings(p Paths) (*config.Daemon, error) {
	d, err := config.LoadDaemon(filepath.Join(p.ConfigDir, "herald.cfg")) // missing: defaults
	if err != nil {
		return nil, err
	}
	if p.Embedded {
		d.SMTPListen = embeddedSMTP
		d.HTTPListen = embeddedHTTP
	}
	return d, nil
}
