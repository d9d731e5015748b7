package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"herald/internal/app"
	"herald/internal/control"
	"herald/internal/metrics"
	"herald/internal/sysexits"
)

// status prints a running daemon's figures (the same as /metrics) for a
// person.
func (e env) status(args []string) int {
	if len(args) != 0 {
		fmt.Fprintln(e.stderr, "usage: herald status")
		return sysexits.Usage
	}
	st, err := control.DaemonStatus(app.ResolveAdmin("", "").StateDir)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald status:", err)
		return sysexits.Unavailable
	}
	health := "healthy"
	if !st.Healthy {
		health = "NOT HEALTHY: the ingest or delivery loop is stuck"
		if st.Problem != "" {
			health = "NOT HEALTHY: " + st.Problem
		}
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "herald\t%s\n", health)
	fmt.Fprintf(tw, "listening\tsmtp %s; http %s\n", strings.Join(st.SMTP, " "), strings.Join(st.HTTP, " "))
	if q := st.Snapshot.Queue; q != nil {
		fmt.Fprintf(tw, "queue\t%d pending, %d in flight, %d dead; oldest pending %s\n",
			q.Pending, q.Inflight, q.Dead, q.OldestPending.Truncate(time.Second))
	}
	if sp := st.Snapshot.Spool; sp != nil {
		fmt.Fprintf(tw, "spool\t%d entries, %d bytes\n", sp.Entries, sp.Bytes)
	}
	section := func(title string, cs []metrics.Count) {
		fmt.Fprintf(tw, "%s\t", title)
		if len(cs) == 0 {
			fmt.Fprintln(tw, "none yet")
			return
		}
		for i, c := range cs {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprintf(tw, "%s: %d\n", strings.Join(c.Labels, " "), c.Value)
		}
	}
	for _, n := range st.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	section("accepted", st.Snapshot.Accepted)
	section("events", st.Snapshot.Events)
	section("deliveries", st.Snapshot.Deliveries)
	if err := tw.Flush(); err != nil {
		return sysexits.IOErr
	}
	return 0
}
