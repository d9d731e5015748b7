package config

import (
	"fmt"
)

// This file holds the two products herald mimics (Flavor) and their
// built-in sections, verbatim from proxmox-notify (docs/proxmox-notify.md §1.6).

// Flavor selects the product whose built-in defaults herald mimics.
type Flavor int

// The two flavors. PVE's default matcher routes everything to mail-to-root;
// PBS's routes everything but successful prune jobs.
const (
	FlavorPVE Flavor = iota
	FlavorPBS
)

// String returns "pve" or "pbs".
func (f Flavor) String() string {
	if f == FlavorPBS {
		return "pbs"
	}
	return "pve"
}

// MarshalText implements encoding.TextMarshaler.
func (f Flavor) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// ParseFlavor parses "pve" or "pbs".
func ParseFlavor(s string) (Flavor, error) {
	switch s {
	case "pve":
		return FlavorPVE, nil
	case "pbs":
		return FlavorPBS, nil
	}
	return FlavorPVE, fmt.Errorf("unknown flavor %q (want pve or pbs)", s)
}

// The products' default configs, verbatim from proxmox-notify's
// context/pve.rs and context/pbs.rs (mixed tab/space indentation included;
// docs/proxmox-notify.md §1.6).
const (
	pveDefaultConfig = "sendmail: mail-to-root\n" +
		"\tcomment Send mails to root@pam's email address\n" +
		"\tmailto-user root@pam\n" +
		"\n\n" +
		"matcher: default-matcher\n" +
		"    mode all\n" +
		"    target mail-to-root\n" +
		"    comment Route all notifications to mail-to-root\n"
	pbsDefaultConfig = "sendmail: mail-to-root\n" +
		"    comment Send mails to root@pam's email address\n" +
		"    mailto-user root@pam\n" +
		"\n\n" +
		"matcher: default-matcher\n" +
		"    mode all\n" +
		"    invert-match true\n" +
		"    match-field exact:type=prune\n" +
		"    match-severity info\n" +
		"    target mail-to-root\n" +
		"    comment Route everything but successful prune job notifications to mail-to-root\n"
)

// BuiltinFile is the File of sections injected from the built-in defaults.
const BuiltinFile = "<builtin>"

// BuiltinConfig returns the flavor's default config text: what an empty
// notifications.cfg behaves like.
func BuiltinConfig(f Flavor) string {
	if f == FlavorPBS {
		return pbsDefaultConfig
	}
	return pveDefaultConfig
}

// builtins parses a flavor's default config once per call; it is a
// constant, so a problem in it is a programming error.
func builtins(f Flavor) []*parsedSection {
	var ds Diagnostics
	secs := parseFile(diags{list: &ds, file: BuiltinFile}, []byte(BuiltinConfig(f)), false)
	if len(ds) > 0 {
		panic("config: built-in default config does not parse: " + ds.Error())
	}
	return secs
}
