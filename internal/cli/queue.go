package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"herald/internal/app"
	"herald/internal/control"
	"herald/internal/delivery"
	"herald/internal/sysexits"
)

const queueUsage = "usage: herald queue list [--all] | show ID | retry ID|--all | drop ID|--all [--dead] | flush"

func (e env) queueCmd(args []string) int {
	usageErr := func() int {
		fmt.Fprintln(e.stderr, queueUsage)
		return sysexits.Usage
	}
	if len(args) == 0 {
		return usageErr()
	}
	action, rest := args[0], args[1:]
	all := slices.Contains(rest, "--all")
	dead := slices.Contains(rest, "--dead")
	var id string
	for _, a := range rest {
		if a != "--all" && a != "--dead" {
			if id != "" || strings.HasPrefix(a, "-") {
				return usageErr()
			}
			id = a
		}
	}
	switch action {
	case "list", "flush", "mailq":
		if id != "" || dead || (all && action != "list") {
			return usageErr()
		}
	case "show":
		if id == "" || all || dead {
			return usageErr()
		}
	case "retry", "drop":
		if (id == "") == !all || (dead && (action != "drop" || !all)) {
			return usageErr()
		}
	default:
		fmt.Fprintf(e.stderr, "herald queue: unknown action %q\n%s\n", action, queueUsage)
		return sysexits.Usage
	}
	paths := app.ResolveAdmin("", "")
	if action == "mailq" {
		return e.mailq(paths)
	}
	adm, closeAdm, err := app.OpenQueueAdmin(paths.StateDir)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald queue:", err)
		return sysexits.Unavailable
	}
	defer closeAdm()
	fail := func(err error) int {
		if errors.Is(err, fs.ErrPermission) {
			fmt.Fprintf(e.stderr, "herald queue: %v\nonly root and the herald user may act on the delivery queue; mailq lists the mail you submitted\n", err)
			return sysexits.NoPerm
		}
		fmt.Fprintln(e.stderr, "herald queue:", err)
		if errors.Is(err, delivery.ErrNotFound) {
			return 1
		}
		return sysexits.TempFail
	}
	switch action {
	case "list":
		ds, err := adm.List()
		if err != nil {
			return fail(err)
		}
		if !all {
			ds = slices.DeleteFunc(ds, func(d delivery.Delivery) bool { return d.State == delivery.StateDone })
		}
		return e.printDeliveries(ds, all)
	case "show":
		d, ev, err := adm.Get(id)
		if errors.Is(err, delivery.ErrNotFound) && !strings.Contains(id, ".") {
			return e.eventDeliveries(adm, id, "")
		}
		if err != nil {
			return fail(err)
		}
		return e.printJSON(control.QueueItem{Delivery: d, Event: ev})
	case "retry", "drop":
		ids := []string{id}
		if all {
			ds, err := adm.List()
			if err != nil {
				return fail(err)
			}
			ids = nil
			for _, d := range ds {
				if d.State == delivery.StateDead || (!dead && d.State == delivery.StatePending) {
					ids = append(ids, d.ID)
				}
			}
		}
		do, done, summary := adm.Retry, "retry scheduled", "deliveries made due now"
		if action == "drop" {
			do, done, summary = adm.Drop, "dropped", "deliveries dropped"
		}
		if !all && !strings.Contains(id, ".") {
			// An event ID where a delivery ID belongs: say which deliveries
			// it has rather than guess.
			return e.eventDeliveries(adm, id, fmt.Sprintf("herald queue %s takes a delivery ID (EVENT.TARGET)", action))
		}
		code := 0
		for _, id := range ids {
			if err := do(id); err != nil {
				code = fail(err)
				continue
			}
			fmt.Fprintf(e.stdout, "%s: %s\n", id, done)
		}
		if all {
			fmt.Fprintf(e.stdout, "%d %s\n", len(ids), summary)
		}
		return code
	case "flush":
		n, err := adm.Flush()
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(e.stdout, "%d pending deliveries made due now\n", n)
		return 0
	}
	return usageErr()
}

// printDeliveries prints the table of `herald queue list`.
func (e env) printDeliveries(ds []delivery.Delivery, withDone bool) int {
	if len(ds) == 0 {
		what := "no pending or dead deliveries"
		if withDone {
			what = "no deliveries"
		}
		fmt.Fprintln(e.stdout, "queue is empty:", what)
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tAGE\tNEXT\tLAST ERROR")
	now := time.Now()
	counts := map[string]int{}
	for _, d := range ds {
		counts[d.State]++
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
	fmt.Fprintf(e.stdout, "-- %d pending, %d in flight, %d dead", counts[delivery.StatePending], counts[delivery.StateInflight], counts[delivery.StateDead])
	if withDone {
		fmt.Fprintf(e.stdout, ", %d done", counts[delivery.StateDone])
	}
	fmt.Fprintln(e.stdout)
	return 0
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

// eventDeliveries lists the deliveries of event id (given where a delivery
// ID was expected); hint, when set, makes it an error that says so.
func (e env) eventDeliveries(adm control.QueueAdmin, id, hint string) int {
	ds, err := adm.List()
	if err != nil {
		fmt.Fprintln(e.stderr, "herald queue:", err)
		return sysexits.TempFail
	}
	ds = slices.DeleteFunc(ds, func(d delivery.Delivery) bool { return d.EventID != id })
	if len(ds) == 0 {
		fmt.Fprintf(e.stderr, "herald queue: no delivery or event %s\n", id)
		return 1
	}
	if hint != "" {
		fmt.Fprintf(e.stderr, "herald queue: %s is an event; %s:\n", id, hint)
	}
	fmt.Fprintf(e.stdout, "event %s has %d deliveries:\n", id, len(ds))
	if code := e.printDeliveries(ds, true); code != 0 || hint == "" {
		return code
	}
	return 1
}
