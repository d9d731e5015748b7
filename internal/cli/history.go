package cli

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"herald/internal/app"
	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/history"
	"herald/internal/noise"
	"herald/internal/sysexits"
	"herald/internal/web"
)

// history lists the event history: each event with where it went.
func (e env) history(args []string) int {
	fs := e.flags("history")
	since := fs.String("since", "", "only events received in this last duration (e.g. 12h, 2d)")
	typ := fs.String("type", "", "only events of this type")
	sev := fs.String("severity", "", "only events of this severity")
	grep := fs.String("grep", "", "only events whose title, body or a field matches this regular expression")
	asJSON := fs.Bool("json", false, "print a JSON array of events with their deliveries")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		fmt.Fprintln(e.stderr, "usage: herald history [--since DUR] [--type T] [--severity S] [--grep RE] [--json]")
		return sysexits.Usage
	}
	var f history.Filter
	if *since != "" {
		d, err := config.ParseDuration(*since)
		if err != nil || d <= 0 {
			fmt.Fprintln(e.stderr, "herald history: --since: want a duration such as 90m, 12h or 2d")
			return sysexits.Usage
		}
		f.Since = time.Now().Add(-d)
	}
	if *sev != "" {
		if _, err := event.ParseSeverity(*sev); err != nil {
			fmt.Fprintln(e.stderr, "herald history: --severity:", err)
			return sysexits.Usage
		}
	}
	f.Type, f.Severity = *typ, *sev
	if *grep != "" {
		re, err := regexp.Compile(*grep)
		if err != nil {
			fmt.Fprintln(e.stderr, "herald history: --grep:", err)
			return sysexits.Usage
		}
		f.Grep = re.MatchString
	}
	paths := app.Resolve("", "")
	entries, err := history.Read(filepath.Join(paths.StateDir, app.HistoryDir), f)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald history:", err)
		return sysexits.IOErr
	}
	if *asJSON {
		return e.printJSON(entries)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	for _, en := range entries {
		ev := en.Event
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", en.Received.Local().Format("2006-01-02 15:04:05"), ev.Severity,
			ev.Type(), truncateLine(ev.Title, 80), ev.ID)
		if len(en.Targets) == 0 {
			fmt.Fprintln(tw, "\t\t\t→ no target matched\t")
		}
		for _, n := range en.Noise {
			until := ""
			if !n.Until.IsZero() {
				until = " until " + n.Until.Local().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "\t\t\t→ %s: %s by noise rule %s%s\t\n", n.Target, n.Action, n.Rule, until)
		}
		for _, d := range en.Deliveries {
			msg := ""
			if d.Error != "" {
				msg = ": " + truncateLine(d.Error, 80)
			}
			fmt.Fprintf(tw, "\t\t\t→ %s: %s after %d attempt(s)%s\t\n", d.Target, d.State, d.Attempts, msg)
		}
	}
	if err := tw.Flush(); err != nil {
		return sysexits.IOErr
	}
	return 0
}

func truncateLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// webURL prints the status page's URL with its access token, one line.
func (e env) webURL(args []string) int {
	if len(args) != 0 {
		fmt.Fprintln(e.stderr, "usage: herald web")
		return sysexits.Usage
	}
	paths := app.Resolve("", "")
	s, err := app.LoadSettings(paths, shimPaths())
	if err != nil {
		e.printDiags(app.Diagnostics(err))
		return sysexits.Config
	}
	if len(s.Daemon.HTTPListen) == 0 {
		fmt.Fprintln(e.stderr, "herald web: herald.cfg sets http-listen none: there is no status page")
		return sysexits.Config
	}
	tok, err := web.LoadOrCreateToken(paths.StateDir)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald web:", err)
		return sysexits.NoPerm
	}
	ap := s.Daemon.HTTPListen[0]
	if ap.Addr().IsUnspecified() {
		ap = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
	}
	fmt.Fprintf(e.stdout, "http://%s/?token=%s\n", ap, tok)
	return 0
}

// planNoise is explain's noise part: the decisions for ev's targets at
// time at, given what the daemon holds and counts now (read, not changed).
func (e env) planNoise(paths app.Paths, s *app.Settings, ev *event.Event, targets []string, at time.Time) []noise.Decision {
	if len(s.Notify.Noise) == 0 {
		return nil
	}
	n, err := noise.Open(noise.Options{Dir: filepath.Join(paths.StateDir, app.NoiseDir), ReadOnly: true,
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(e.stderr, "herald explain: noise state:", err)
		return nil
	}
	return n.Plan(s.Notify, ev, targets, at)
}
