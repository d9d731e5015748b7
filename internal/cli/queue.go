package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"herald/internal/app"
	"herald/internal/delivery"
	"herald/internal/sysexits"
)

func (e env) queueCmd(args []string) int {
	if len(args) == 0 || (args[0] != "list" && len(args) != 2) || (args[0] == "list" && len(args) != 1) {
		fmt.Fprintln(e.stderr, "usage: herald queue list | show ID | retry ID | drop ID")
		return sysexits.Usage
	}
	paths := app.Resolve("", "")
	adm, closeAdm, err := app.OpenQueueAdmin(paths.StateDir)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald queue:", err)
		return sysexits.Unavailable
	}
	defer closeAdm()
	fail := func(err error) int {
		fmt.Fprintln(e.stderr, "herald queue:", err)
		if errors.Is(err, delivery.ErrNotFound) {
			return 1
		}
		return sysexits.TempFail
	}
	switch args[0] {
	case "list":
		ds, err := adm.List()
		if err != nil {
			return fail(err)
		}
		if len(ds) == 0 {
			fmt.Fprintln(e.stdout, "queue is empty")
			return 0
		}
		tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tAGE\tNEXT\tLAST ERROR")
		now := time.Now()
		for _, d := range ds {
			next := "-"
			if d.State == delivery.StatePending {
				next = d.NextAttempt.Local().Format("15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.State, d.Attempts,
				now.Sub(d.Created).Truncate(time.Second), next, oneLine(d.LastError, 80))
		}
		if err := tw.Flush(); err != nil {
			return sysexits.IOErr
		}
		return 0
	case "show":
		d, ev, err := adm.Get(args[1])
		if err != nil {
			return fail(err)
		}
		return e.printJSON(app.QueueItem{Delivery: d, Event: ev})
	case "retry":
		if err := adm.Retry(args[1]); err != nil {
			return fail(err)
		}
		fmt.Fprintf(e.stdout, "%s: retry scheduled\n", args[1])
		return 0
	case "drop":
		if err := adm.Drop(args[1]); err != nil {
			return fail(err)
		}
		fmt.Fprintf(e.stdout, "%s: dropped\n", args[1])
		return 0
	}
	fmt.Fprintf(e.stderr, "herald queue: unknown action %q\n", args[0])
	return sysexits.Usage
}

func oneLine(s string, n int) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			r = ' '
		}
		out = append(out, r)
		if len(out) >= n {
			return string(out) + "…"
		}
	}
	return string(out)
}
