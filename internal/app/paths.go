package app

import (
	"os"
	"path/filepath"

	"herald/internal/safeio"
)

// Default locations of a system install (docs/interfaces.md §2).
const (
	DefaultConfigDir = "/etc/herald"
	DefaultStateDir  = "/var/lib/herald"
)

// Paths says where herald reads its configuration and keeps its state, and
// whether the embedded default applies.
type Paths struct {
	ConfigDir string
	StateDir  string
	// Embedded is true when no configuration was named and none is
	// installed: herald then runs its embedded default (docs/interfaces.md §4).
	Embedded bool
}

// Resolve applies the precedence flag > environment > default for both
// directories. The embedded default applies when no config dir was named
// (flag or HERALD_CONFIG_DIR) and DefaultConfigDir does not exist; its state
// lives under ./var unless a state dir was named.
func Resolve(configFlag, stateFlag string) Paths {
	p := Paths{ConfigDir: firstNonEmpty(configFlag, os.Getenv("HERALD_CONFIG_DIR"))}
	if p.ConfigDir == "" {
		p.ConfigDir = DefaultConfigDir
		if _, err := os.Stat(DefaultConfigDir); os.IsNotExist(err) {
			p.Embedded = true
		}
	}
	p.StateDir = firstNonEmpty(stateFlag, os.Getenv("HERALD_STATE_DIR"))
	if p.StateDir == "" {
		p.StateDir = DefaultStateDir
		if p.Embedded {
			// Also for root: without an installed config herald is being
			// tried out, and ./var is where the README says to look.
			p.StateDir = "var"
		}
	}
	if abs, err := filepath.Abs(p.StateDir); err == nil {
		p.StateDir = abs
	}
	return p
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ResolveAdmin is Resolve for the admin commands (everything but serve):
// without a flag or HERALD_STATE_DIR the state directory is
// DefaultStateDir even under the embedded default, as for the sendmail
// shim, so that the CLI and the shim always agree and a command run in
// some directory never creates ./var there. A `make run` daemon's state is
// reached with HERALD_STATE_DIR=var, as with the shim.
func ResolveAdmin(configFlag, stateFlag string) Paths {
	p := Resolve(configFlag, stateFlag)
	if p.Embedded && stateFlag == "" && os.Getenv("HERALD_STATE_DIR") == "" {
		p.StateDir = DefaultStateDir
	}
	return p
}

// makeStateDir creates the state directory (and its parents) when missing,
// durably.
func (p Paths) makeStateDir() error { return safeio.MkdirAll(p.StateDir, 0o755) }
