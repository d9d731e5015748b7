package app

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/build"
)

// reportBroken tells the working targets, at each start and reload, which
// targets the configuration disabled and why: a daemon with a broken section must
// not go silent about it. The event is routed like any other (type
// config-problem, severity error), never to a disabled target; their own
// deliveries fail with the reason and emit delivery-failed events.
func (a *App) reportBroken(targets map[string]target.Target) {
	var lines, names []string
	for name, t := range targets {
		if reason, ok := build.BrokenReason(t); ok {
			names = append(names, name)
			lines = append(lines, fmt.Sprintf("- %s: %s", name, reason))
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	slices.Sort(lines)
	host := a.Settings().Daemon.Hostname
	ev := &event.Event{
		ID:        event.NewID(),
		Timestamp: a.now().Truncate(time.Second),
		Severity:  event.Error,
		Title:     fmt.Sprintf("herald on %s: %d notification target(s) disabled by configuration problems", host, len(names)),
		Body: "herald is running, but these targets cannot deliver; notifications routed to them fail " +
			"(each with a delivery-failed event) until the configuration is fixed (herald check):\n" +
			strings.Join(lines, "\n") + "\n",
		Fields: map[string]string{
			event.FieldType:     "config-problem",
			event.FieldHostname: host,
			"targets":           strings.Join(names, ","),
		},
	}
	to := a.working(a.route(ev, ""))
	a.log.Error("configuration problems disabled targets; the others run", "targets", strings.Join(names, ","), "notified", strings.Join(to, ","))
	a.metrics.Event(ev.Type(), ev.Severity.String())
	if err := a.monitors.Feed(ev); err != nil {
		a.log.Error("configuration-problem event not fed to the monitors", "err", err)
	}
	a.history.Event(ev, to, nil)
	if err := a.queue.Enqueue(ev, to); err != nil {
		a.log.Error("could not queue the configuration-problem event", "err", err)
	}
}

// working leaves out of a route the targets that are disabled by a
// configuration problem: herald's own reports (config-problem,
// delivery-failed) would only fail there again.
func (a *App) working(route []string) []string {
	out := route[:0:0]
	for _, name := range route {
		if t, ok := a.lookupTarget(name); ok {
			if _, broken := build.BrokenReason(t); broken {
				continue
			}
		}
		out = append(out, name)
	}
	return out
}
