package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"herald/internal/app"
	"herald/internal/control"
	"herald/internal/delivery"
	"herald/internal/sysexits"
	"herald/internal/target/relay"
)

// mailq prints what waits in Postfix's mailq format: the spool (accepted,
// not yet processed) and every mail or event with deliveries not yet done,
// each with the reason it waits. The shim's mailq and sendmail -bp run
// this. A running daemon answers for the calling user (a user sees their
// own submissions, root all); without a daemon the files are read as they
// are, which needs root or herald, and nothing is created.
func (e env) mailq(paths app.Paths) int {
	m, err := control.DaemonMailq(paths.StateDir)
	if errors.Is(err, control.ErrNotRunning) {
		m, err = app.OfflineMailq(paths)
		if errors.Is(err, fs.ErrPermission) {
			fmt.Fprintln(e.stderr, "mailq: herald is not running, and only root and the herald user may read its queue files")
			return sysexits.NoPerm
		}
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "mailq:", err)
		return sysexits.TempFail
	}
	if _, err := fmt.Fprint(e.stdout, formatMailq(m)); err != nil {
		return sysexits.IOErr
	}
	return 0
}

const mailqIndent = 25 + 1 + 8 + 1 + 20 + 1

// formatMailq renders m as Postfix's mailq does: one block per message
// (ID, size, arrival, sender; the reason it waits in parentheses; its
// recipients), then a total. "Mail queue is empty" only when nothing at all
// waits.
func formatMailq(m control.Mailq) string {
	var b strings.Builder
	for _, n := range m.Notes {
		fmt.Fprintf(&b, "-- %s\n", n)
	}
	if len(m.Spool)+len(m.Queue) == 0 {
		b.WriteString("Mail queue is empty\n")
		return b.String()
	}
	fmt.Fprintf(&b, "%-25s %8s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
	var total int64
	for _, e := range m.Spool {
		total += e.Size
		who := sender(e.From) + fmt.Sprintf(" (uid %d, %s", e.UID, e.Source)
		if e.Event {
			who += " event"
		}
		who += ")"
		fmt.Fprintf(&b, "%-25s %8d %-20s %s\n", e.ID, e.Size, e.Received.Local().Format("Mon Jan _2 15:04:05"), who)
		fmt.Fprintf(&b, "%*s(accepted, waiting to be processed)\n", mailqIndent, "")
		for _, r := range e.Recipients {
			fmt.Fprintf(&b, "%*s%s\n", mailqIndent, "", r)
		}
		b.WriteString("\n")
	}
	var dead int
	for _, it := range m.Queue {
		total += int64(it.Size)
		id := it.EventID
		if slices.ContainsFunc(it.Deliveries, func(d delivery.Delivery) bool { return d.State == delivery.StateInflight }) {
			id += "*" // Postfix marks a message being delivered so
		}
		from := sender(it.From)
		if it.From == "" && len(it.Recipients) == 0 {
			from = "(event) " + oneLine(it.Title, 40)
		}
		fmt.Fprintf(&b, "%-25s %8d %-20s %s\n", id, it.Size, it.Created.Local().Format("Mon Jan _2 15:04:05"), from)
		for _, d := range it.Deliveries {
			if d.State == delivery.StateDead {
				dead++
			}
			why := d.State
			if d.Attempts > 0 {
				why += fmt.Sprintf(", %d attempts", d.Attempts)
			}
			if d.LastError != "" {
				why += ": " + oneLine(d.LastError, 100)
			}
			fmt.Fprintf(&b, "%*s(%s %s)\n", mailqIndent, "", d.Target, why)
			if d.Target == relay.Name {
				for _, r := range m.Remote[it.EventID] {
					fmt.Fprintf(&b, "%*s%s\n", mailqIndent, "", r)
				}
			} else {
				fmt.Fprintf(&b, "%*starget %s\n", mailqIndent, "", d.Target)
			}
		}
		b.WriteString("\n")
	}
	n := len(m.Spool) + len(m.Queue)
	req := "Requests"
	if n == 1 {
		req = "Request"
	}
	fmt.Fprintf(&b, "-- %d Kbytes in %d %s", (total+1023)/1024, n, req)
	if dead > 0 {
		fmt.Fprintf(&b, " (%d dead deliveries: herald queue retry or drop)", dead)
	}
	b.WriteString(".\n")
	return b.String()
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}
