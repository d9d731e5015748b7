package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"herald/internal/app"
	"herald/internal/control"
	"herald/internal/monitor"
	"herald/internal/sysexits"
)

const monitorsUsage = "usage: herald monitors [--json] | herald monitors pause|resume NAME"

// monitorsCmd is `herald monitors [--json]` and `herald monitors
// pause|resume NAME`, through the running daemon's control socket. Without
// a running daemon the list shows the state it last recorded.
func (e env) monitorsCmd(args []string) int {
	stateDir := app.Resolve("", "").StateDir
	if len(args) >= 1 && (args[0] == "pause" || args[0] == "resume") {
		if len(args) != 2 {
			fmt.Fprintln(e.stderr, monitorsUsage)
			return sysexits.Usage
		}
		err := control.DaemonPauseMonitor(stateDir, args[1], args[0] == "pause")
		switch {
		case errors.Is(err, monitor.ErrUnknown):
			fmt.Fprintf(e.stderr, "herald monitors %s: %v\n", args[0], err)
			return 1
		case err != nil:
			fmt.Fprintf(e.stderr, "herald monitors %s: %v\n", args[0], err)
			return sysexits.Unavailable
		}
		fmt.Fprintf(e.stdout, "%s %sd\n", args[1], args[0])
		return 0
	}
	fs := e.flags("monitors")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		fmt.Fprintln(e.stderr, monitorsUsage)
		return sysexits.Usage
	}
	list, err := control.DaemonMonitors(stateDir)
	if err != nil {
		// The daemon is not running: show what it last recorded, which is
		// what an admin wants to see while it is down.
		var oerr error
		list, oerr = app.OfflineMonitors(app.Resolve("", ""), shimPaths())
		if oerr != nil {
			fmt.Fprintln(e.stderr, "herald monitors:", err)
			if ds := app.Diagnostics(oerr); len(ds) > 0 {
				e.printDiags(ds)
			} else {
				fmt.Fprintln(e.stderr, "herald monitors:", oerr)
			}
			return sysexits.Unavailable
		}
		fmt.Fprintf(e.stderr, "herald monitors: the daemon is not running (%v); the state it last recorded:\n", err)
	}
	if list == nil {
		list = []monitor.Status{}
	}
	if *asJSON {
		return e.printJSON(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no monitors configured (heartbeat: and usage: sections in notifications.cfg)")
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSTATE\tLAST SUCCESS\tLAST FAILURE\tNEXT DEADLINE\tNOTE")
	for _, m := range list {
		state := m.State
		if m.Reason != "" {
			state += " (" + m.Reason + ")"
		}
		if m.Disabled {
			state += " (disabled)"
		}
		var note []string
		if m.Failures > 0 {
			note = append(note, fmt.Sprintf("%d failures in a row", m.Failures))
		}
		if m.UsedPercent != nil {
			note = append(note, fmt.Sprintf("%s %.1f%% used of %g%%", m.Path, *m.UsedPercent, m.Threshold))
		}
		if m.Error != "" {
			note = append(note, m.Error)
		}
		if m.Comment != "" {
			note = append(note, m.Comment)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Kind, state, when(m.LastSuccess),
			when(m.LastFailure), when(m.NextDeadline), strings.Join(note, "; "))
	}
	if err := tw.Flush(); err != nil {
		return sysexits.IOErr
	}
	return 0
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.In(time.Local).Format("2006-01-02 15:04:05")
}
