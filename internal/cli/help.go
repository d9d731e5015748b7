package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// command is one herald command as help and completion present it.
type command struct {
	name     string
	synopsis string // after "herald NAME"
	summary  string
	details  string // options and notes, shown by `herald NAME --help`
}

// commands lists every command, in the order `herald --help` shows them.
var commands = []command{
	{"serve", "[--config-dir DIR] [--state-dir DIR]", "run the daemon in the foreground", `
  --config-dir DIR   configuration directory (default /etc/herald, or HERALD_CONFIG_DIR)
  --state-dir DIR    state directory (default /var/lib/herald, or HERALD_STATE_DIR;
                     ./var under the embedded default, when /etc/herald does not exist)
`},
	{"check", "[--config-dir DIR]", "validate every configuration file, reporting every problem", `
  --config-dir DIR   configuration directory (default /etc/herald); one that does
                     not exist is an error
Prints FILE:LINE: message per problem (herald.cfg, notifications.cfg, the private
file, user.cfg, templates); exit 1 when there are errors.
`},
	{"convert", "[--config-dir DIR] FILE.eml|-", "print the event a mail becomes (JSON, classified); sends nothing", `
  --config-dir DIR   configuration directory whose classifier sections and
                     classifiers-disable apply (default /etc/herald)
`},
	{"explain", "[--config-dir DIR] (--event F.json | --mail F.eml) [--rcpt ADDR]... [--at RFC3339] [--json]", "show where an event or a mail would go", `
  --event FILE       an event as JSON (- for stdin)
  --mail FILE        a mail (- for stdin)
  --rcpt ADDR        an envelope recipient of the mail (repeatable; default: the
                     To, Cc and Bcc headers)
  --at TIME          evaluate calendar rules at this RFC 3339 time
  --json             print JSON (the default when stdout is not a terminal)
`},
	{"notify", "--severity SEV --type TYPE [--field K=V]... [--title T] [--body B | --body-file F|-] [--state-dir DIR]", "submit an event through the spool", `
  --severity SEV     info, notice, warning, error or unknown
  --type TYPE        the event's type field
  --field K=V        a metadata field (repeatable)
  --title T, --body B, --body-file FILE|-
`},
	{"test", "[--config-dir DIR] TARGET", "send a test notification to one target and report the answer", ""},
	{"queue", "list [--all] | show ID | retry ID|--all | drop ID|--all [--dead] | flush", "inspect and act on the delivery queue", `
  list [--all]            pending, in-flight and dead deliveries (--all: and recently done)
  show ID                 one delivery as JSON; an event ID lists that event's deliveries
  retry ID | --all        make a pending or dead delivery (or all of them) due now
  drop ID | --all [--dead]  remove a delivery (or all pending and dead ones; --dead: only dead)
  flush                   make every pending delivery due now and try it (sendmail -q)
`},
	{"status", "", "what the running daemon accepted, routed and delivered; queue and spool now", ""},
	{"monitors", "[--json] | pause NAME | resume NAME", "heartbeats and usage watches: state, last success and failure, next deadline", `
  --json             a JSON array of objects (name, kind, state, ...)
  pause NAME         stop judging a monitor until resumed (no alarms while paused)
  resume NAME        judge it again, its clock starting now
`},
	{"history", "[--since DUR] [--type T] [--severity S] [--grep RE] [--json]", "past events, where they went and what noise control did with them", `
  --since DUR        only events received in this last duration (e.g. 12h, 2d)
  --type T           only events of this type
  --severity S       only events of this severity
  --grep RE          only events whose title, body or a field matches RE
  --json             a JSON array of events with their deliveries
`},
	{"web", "", "print the status page's URL with its access token (one line)", ""},
	{"version", "", "print the version", ""},
}

// commandNames lists the command names.
func commandNames() []string {
	out := make([]string, len(commands))
	for i, c := range commands {
		out[i] = c.name
	}
	return out
}

func lookupCommand(name string) (command, bool) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

// usageText is `herald --help`.
func usageText() string {
	var b strings.Builder
	b.WriteString("usage: herald COMMAND [options]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	b.WriteString(`
herald COMMAND --help shows a command's options; man herald(8) says more.
HERALD_CONFIG_DIR and HERALD_STATE_DIR override the default directories
(/etc/herald, /var/lib/herald) for every command.
`)
	return b.String()
}

// printCommandHelp writes `herald NAME --help`.
func printCommandHelp(w io.Writer, c command) {
	fmt.Fprintf(w, "usage: herald %s %s\n\n%s.\n", c.name, c.synopsis, c.summary)
	if c.details != "" {
		fmt.Fprint(w, c.details)
	}
}

// wantsHelp reports whether args ask for help: -h, -help or --help before
// a "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}
