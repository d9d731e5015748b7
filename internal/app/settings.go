package app

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"herald/internal/config"
)

// Settings is everything herald reads at start-up and on reload.
type Settings struct {
	Paths  Paths
	Daemon *config.Daemon
	Notify *config.Config
	// Datacenter is Proxmox's node settings (herald.cfg datacenter-file).
	Datacenter config.Datacenter
	// ShimPaths are herald's own sendmail shims (the loop check).
	ShimPaths []string

	routers routers // compiled from Notify on first use (routers.go)
}

// embeddedConfig is the notifications.cfg of the embedded default (docs/interfaces.md §4):
// every event to STATE/events.jsonl, every mail to the mbox STATE/mail/root.
const embeddedConfig = `file: events
	path %[1]s/events.jsonl
	comment every event as one JSON line

mbox: mail-root
	path %[1]s/mail/root
	comment every mail, as received, in root's local mailbox

matcher: default-matcher
	target events
	target mail-root
	comment the embedded default routes everything to both
`

// Embedded default listeners: unprivileged ports on both loopback families.
var (
	embeddedSMTP = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:2525"), netip.MustParseAddrPort("[::1]:2525")}
	embeddedHTTP = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8025")}
)

// LoadSettings reads herald.cfg and the notification configuration for p.
// The error, when not nil, is a config.Diagnostics naming FILE:LINE.
func LoadSettings(p Paths, shimPaths []string) (*Settings, error) {
	return loadSettings(p, shimPaths, false)
}

// loadSettings is LoadSettings; lenient is for the daemon's start-up, where
// a section with an error is disabled instead of stopping everything
// (config.LoadOptions.Lenient).
func loadSettings(p Paths, shimPaths []string, lenient bool) (*Settings, error) {
	s := &Settings{Paths: p, ShimPaths: shimPaths}
	if p.Embedded {
		d, err := config.LoadDaemon(filepath.Join(p.ConfigDir, "herald.cfg")) // missing: defaults
		if err != nil {
			return nil, err
		}
		d.SMTPListen = embeddedSMTP
		d.HTTPListen = embeddedHTTP
		resolveMailName(d)
		s.Daemon = d
		text := fmt.Sprintf(embeddedConfig, p.StateDir)
		cfg, err := config.Parse("<embedded>", []byte(text), "", nil, config.LoadOptions{ShimPaths: shimPaths})
		if err != nil {
			return nil, err
		}
		s.Notify = cfg
		return s, nil
	}
	// A missing directory is read like one with no files (built-ins only),
	// as Proxmox reads missing files; check and serve say so.
	var dirWarning *config.Diagnostic
	if fi, err := os.Stat(p.ConfigDir); err != nil || !fi.IsDir() {
		dirWarning = &config.Diagnostic{File: p.ConfigDir, Warning: true,
			Msg: "config directory does not exist: only the built-in mail-to-root and default-matcher apply"}
	}
	d, err := config.LoadDaemon(filepath.Join(p.ConfigDir, "herald.cfg"))
	if err != nil {
		return nil, err
	}
	useCredentials(d)
	resolveMailName(d)
	s.Daemon = d
	if s.Datacenter, err = config.LoadDatacenter(d.DatacenterFile); err != nil {
		return nil, config.Diagnostics{{File: d.DatacenterFile, Msg: err.Error()}}
	}
	cfg, err := config.Load(p.ConfigDir, config.LoadOptions{
		Flavor:      d.Flavor,
		PublicPath:  d.NotificationsFile,
		PrivatePath: d.NotificationsPrivFile,
		ShimPaths:   shimPaths,
		Lenient:     lenient,
	})
	if err != nil {
		return nil, err
	}
	if dirWarning != nil {
		cfg.Warnings = append(config.Diagnostics{*dirWarning}, cfg.Warnings...)
	}
	s.Notify = cfg
	return s, nil
}

// Diagnostics returns the problems inside err as config diagnostics, or one
// diagnostic without a line for an error of another kind.
func Diagnostics(err error) config.Diagnostics {
	var ds config.Diagnostics
	if errors.As(err, &ds) {
		return ds
	}
	var d config.Diagnostic
	if errors.As(err, &d) {
		return config.Diagnostics{d}
	}
	return config.Diagnostics{{Msg: err.Error()}}
}

// Names of the systemd credentials herald takes its secrets from when
// herald.cfg does not name a file (LoadCredential=NAME:PATH in a drop-in).
const (
	CredentialNotificationsPriv = "notifications-priv.cfg"
	CredentialRelayPassword     = "relay-password"
)

// useCredentials points the private notifications file and the relay
// password at systemd credentials ($CREDENTIALS_DIRECTORY) when herald.cfg
// leaves them unset and the credential exists. systemd hands the daemon a
// private read-only copy, so the secret never has to be readable in /etc.
func useCredentials(d *config.Daemon) {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return
	}
	if d.NotificationsPrivFile == "" {
		if p := filepath.Join(dir, CredentialNotificationsPriv); fileExists(p) {
			d.NotificationsPrivFile = p
		}
	}
	if d.RelayPasswordFile == "" && d.Relay != "" {
		if p := filepath.Join(dir, CredentialRelayPassword); fileExists(p) {
			d.RelayPasswordFile = p
		}
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// SpoolDir is where the spool lives: herald.cfg's spool-dir, else
// STATE/spool. The sendmail shim finds it the same way.
func (s *Settings) SpoolDir() string {
	if s.Daemon.SpoolDir != "" && !s.Paths.Embedded {
		return s.Daemon.SpoolDir
	}
	return filepath.Join(s.Paths.StateDir, "spool")
}

// SpoolDirFor reads only herald.cfg to find the spool of p (for commands
// that submit and need nothing else of the configuration).
func SpoolDirFor(p Paths) (string, error) {
	s := &Settings{Paths: p, Daemon: config.DefaultDaemon()}
	if !p.Embedded {
		d, err := config.LoadDaemon(filepath.Join(p.ConfigDir, "herald.cfg"))
		if err != nil {
			return "", err
		}
		s.Daemon = d
	}
	return s.SpoolDir(), nil
}
