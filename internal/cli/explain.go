package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"herald/internal/app"
	"herald/internal/event"
	"herald/internal/mailconv"
	"herald/internal/mailroute"
	"herald/internal/sysexits"
	"herald/internal/target/relay"
)

// mailExplanation is where a mail goes by its envelope (docs/mta.md).
type mailExplanation struct {
	Recipients []string `json:"recipients"`
	Local      []string `json:"local"`
	Remote     []string `json:"remote"`
	// Relayed: the remote recipients get the mail as-is through Relay.
	Relayed bool   `json:"relayed"`
	Relay   string `json:"relay,omitempty"`
	// Rule says in words what happens.
	Rule string `json:"rule"`
	// Note says which built-in matchers do not apply to a mail relayed to
	// all of its recipients.
	Note string `json:"note,omitempty"`
}

// explainMail decides, as the daemon does, where the mail raw goes: its
// envelope recipients are rcpts, else the addresses of its To, Cc and Bcc
// headers (what sendmail -t would take). ev gets the envelope fields the
// daemon records.
func explainMail(s *app.Settings, ev *event.Event, raw []byte, rcpts []string) *mailExplanation {
	if len(rcpts) == 0 {
		rcpts = mailroute.HeaderAddresses(raw, "To", "Cc", "Bcc")
	}
	if ev.Mail != nil {
		ev.Mail.Recipients = rcpts
		mailconv.RecordEnvelope(ev)
	}
	d := s.MailDecision(rcpts)
	x := &mailExplanation{Recipients: rcpts, Local: d.Local, Remote: d.Remote, Relayed: d.Relayed}
	switch {
	case len(rcpts) == 0:
		x.Rule = "no recipients: the mail is a notification, routed by the matchers"
	case len(d.Remote) == 0:
		x.Rule = "all recipients are local: the mail is a notification, routed by the matchers"
	case d.Relayed:
		x.Relay = s.Daemon.Relay
		x.Rule = fmt.Sprintf("relayed as-is to %s through %s (target %s), and routed by the matchers as an event",
			strings.Join(d.Remote, ", "), s.Daemon.Relay, relay.Name)
	default:
		x.Rule = "no relay is set: mail for remote recipients is a notification, routed by the matchers"
	}
	for _, l := range []*[]string{&x.Recipients, &x.Local, &x.Remote} {
		if *l == nil {
			*l = []string{}
		}
	}
	return x
}

// isTerminal reports whether w is a terminal (explain prints a summary
// there and JSON elsewhere).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printExplanation is explain's readable form.
func (e env) printExplanation(x explanation) int {
	var b bytes.Buffer
	ev := x.Event
	fmt.Fprintf(&b, "event    %s  severity %s  at %s\n", oneLine(ev.Title, 70), ev.Severity, x.At)
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "         %s=%s\n", k, oneLine(ev.Fields[k], 70))
	}
	if x.Mail != nil {
		fmt.Fprintf(&b, "\nmail     %s\n", x.Mail.Rule)
		if len(x.Mail.Local) > 0 {
			fmt.Fprintf(&b, "         local:  %s\n", strings.Join(x.Mail.Local, ", "))
		}
		if len(x.Mail.Remote) > 0 {
			fmt.Fprintf(&b, "         remote: %s\n", strings.Join(x.Mail.Remote, ", "))
		}
		if x.Mail.Note != "" {
			fmt.Fprintf(&b, "         note:   %s\n", x.Mail.Note)
		}
	}
	b.WriteString("\nmatchers\n")
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	for _, m := range x.Matchers {
		verdict := "no match"
		if m.Matched {
			verdict = "MATCH → " + strings.Join(m.Targets, ", ")
		}
		if m.Disabled {
			verdict = "disabled"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.Name, verdict, oneLine(m.Reason, 90))
	}
	_ = tw.Flush()
	for _, sk := range x.Skipped {
		fmt.Fprintf(&b, "  skipped target %s: %s\n", sk.Target, sk.Reason)
	}
	if len(x.Targets) == 0 {
		b.WriteString("\ntargets  none: nothing would be delivered\n")
	} else {
		fmt.Fprintf(&b, "\ntargets  %s\n", strings.Join(x.Targets, ", "))
	}
	if x.Classifier != "" {
		fmt.Fprintf(&b, "\nclassifier  %s\n", x.Classifier)
	}
	if len(x.Recipients) > 0 {
		b.WriteString("\nrecipients\n")
		names := make([]string, 0, len(x.Recipients))
		for n := range x.Recipients {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v, _ := json.Marshal(x.Recipients[n])
			fmt.Fprintf(&b, "  %s\t%s\n", n, oneLine(string(v), 100))
		}
	}
	for _, h := range x.Heartbeats {
		v, _ := json.Marshal(h)
		fmt.Fprintf(&b, "heartbeat  %s\n", oneLine(string(v), 110))
	}
	for _, d := range x.Noise {
		v, _ := json.Marshal(d)
		fmt.Fprintf(&b, "noise      %s\n", oneLine(string(v), 110))
	}
	b.WriteString("\n(herald explain --json prints all of it as JSON)\n")
	if _, err := e.stdout.Write(b.Bytes()); err != nil {
		return sysexits.IOErr
	}
	return 0
}

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
