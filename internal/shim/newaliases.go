package shim

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"herald/internal/aliases"
	"herald/internal/sysexits"
)

// newAliases implements newaliases / sendmail -bi / -I. herald keeps no
// alias database (the daemon reads the aliases file itself), so this
// validates the file and prints what it defines: one `name: value, ...`
// line per alias on stdout, each problem as FILE:LINE: message on stderr.
// Exit 0 when the file is usable (warnings allowed), 65 (EX_DATAERR) when a
// line is broken or an alias loops, 74 (EX_IOERR) when it cannot be read.
func newAliases(prog string, stdout, stderr io.Writer) int {
	// Reading a file needs no privilege: give up the shim's group before
	// following a path the environment may have chosen.
	if err := dropPrivileges(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return sysexits.OSErr
	}
	cfgDir := os.Getenv("HERALD_CONFIG_DIR")
	if cfgDir == "" {
		cfgDir = DefaultConfigDir
	}
	path := configAliasesFile(filepath.Join(cfgDir, "herald.cfg"))
	if _, err := os.Stat(path); os.IsNotExist(err) {
		fmt.Fprintf(stdout, "%s: no aliases file; local recipients are delivered as they are\n", path)
		return sysexits.OK
	}
	tab, probs, err := aliases.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return sysexits.IOErr
	}
	var b strings.Builder
	for _, e := range tab.Entries() {
		fmt.Fprintf(&b, "%s: %s\n", e.Name, strings.Join(e.Values, ", "))
	}
	errors := 0
	for _, p := range probs {
		kind := ""
		if p.Warning {
			kind = "warning: "
		} else {
			errors++
		}
		fmt.Fprintf(stderr, "%s:%d: %s%s\n", path, p.Line, kind, p.Msg)
	}
	fmt.Fprintf(&b, "%s: %d aliases\n", path, tab.Len())
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return sysexits.IOErr
	}
	if errors > 0 {
		fmt.Fprintf(stderr, "%s: %s has %d broken entries (see above); herald ignores them\n", prog, path, errors)
		return sysexits.DataErr
	}
	return sysexits.OK
}

// configAliasesFile returns herald.cfg's aliases-file, else Debian's
// /etc/aliases; like configSpoolDir a line scan, validated by herald check.
func configAliasesFile(path string) string {
	if data, err := os.ReadFile(path); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "aliases-file" && filepath.IsAbs(f[1]) {
				return filepath.Clean(f[1])
			}
		}
	}
	return aliases.DefaultFile
}
