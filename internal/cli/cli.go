// Package cli implements herald's command line: the daemon (`serve`) and the
// admin commands (`check`, `convert`, `explain`, `notify`, `test`, `queue`,
// `status`, `monitors`).
// cmd/herald only calls Main.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"herald/internal/app"
	"herald/internal/classify"
	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailconv"
	"herald/internal/monitor"
	"herald/internal/noise"
	"herald/internal/router"
	"herald/internal/spool"
	"herald/internal/sysexits"
	"herald/internal/systemd"
	"herald/internal/target"
	"herald/internal/target/relay"
	"herald/internal/version"
)

// env is what a command needs from the process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Main runs herald with args (args[0] is the program name) and returns the
// exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) < 2 {
		fmt.Fprint(stderr, usageText())
		return sysexits.Usage
	}
	cmd, rest := args[1], args[2:]
	if c, ok := lookupCommand(cmd); ok && wantsHelp(rest) {
		printCommandHelp(stdout, c)
		return 0
	}
	switch cmd {
	case "serve":
		return e.serve(rest)
	case "check":
		return e.check(rest)
	case "convert":
		return e.convert(rest)
	case "explain":
		return e.explain(rest)
	case "notify":
		return e.notify(rest)
	case "test":
		return e.test(rest)
	case "queue":
		return e.queueCmd(rest)
	case "status":
		return e.status(rest)
	case "monitors":
		return e.monitorsCmd(rest)
	case "history":
		return e.history(rest)
	case "web":
		return e.webURL(rest)
	case "version", "--version":
		fmt.Fprintln(stdout, "herald", version.Version)
		return 0
	case "help", "-h", "--help":
		if c, ok := lookupCommand(firstArg(rest)); ok {
			printCommandHelp(stdout, c)
			return 0
		}
		fmt.Fprint(stdout, usageText())
		return 0
	case "__complete":
		return e.complete(rest)
	}
	fmt.Fprintf(stderr, "herald: unknown command %q; the commands are: %s\n(herald --help says what each does)\n",
		cmd, strings.Join(commandNames(), ", "))
	return sysexits.Usage
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func (e env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// shimPaths are the places herald's own sendmail shim lives, for the
// sendmail-path loop check.
func shimPaths() []string {
	ps := []string{"/usr/sbin/sendmail", "/usr/lib/sendmail", "/usr/sbin/herald-sendmail"}
	if exe, err := os.Executable(); err == nil {
		ps = append(ps, filepath.Join(filepath.Dir(exe), "herald-sendmail"))
	}
	return ps
}

func (e env) printDiags(ds config.Diagnostics) {
	for _, d := range ds {
		fmt.Fprintln(e.stderr, d.Error())
	}
}

// daemonGCPercent is the daemon's garbage collection target (GOGC).
const daemonGCPercent = 200

func (e env) serve(args []string) int {
	fs := e.flags("serve")
	cdir := fs.String("config-dir", "", "configuration directory (default /etc/herald)")
	sdir := fs.String("state-dir", "", "state directory (default /var/lib/herald)")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		return sysexits.Usage
	}
	log := slog.New(systemd.NewLogHandler(e.stderr, slog.LevelInfo))
	if os.Getenv("GOGC") == "" {
		// The collector runs when the heap has grown by twice what is live
		// (Go's default is once): under a burst of mail it works about
		// half as often, for a few MiB more (docs/limits.md, "Memory").
		// GOGC in the environment (the unit's Environment=) overrides it.
		debug.SetGCPercent(daemonGCPercent)
	}
	// Sockets from systemd (herald.socket: "smtp", herald-http.socket:
	// "http"); none when started by hand.
	listeners, err := systemd.Listeners()
	if err != nil {
		log.Error("socket activation", "err", err)
		return sysexits.OSErr
	}
	paths := app.Resolve(*cdir, *sdir)
	a, err := app.New(app.Options{Paths: paths, Logger: log, ShimPaths: shimPaths(), Listeners: listeners})
	if err != nil {
		var ds config.Diagnostics
		if errors.As(err, &ds) {
			for _, d := range ds {
				log.Error("configuration problem", "problem", d.Error())
			}
			log.Error("configuration is invalid; not starting (herald check shows the problems)")
			return sysexits.Config
		}
		log.Error("cannot start", "err", err)
		return sysexits.Software
	}
	n := systemd.NewNotifier()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-a.Ready():
		}
		if err := n.Ready(); err != nil {
			log.Warn("sd_notify READY", "err", err)
		}
		go n.Watchdog(ctx, a.Healthy, log)
		for {
			select {
			case <-ctx.Done():
				_ = n.Stopping()
				return
			case <-hup:
				_ = n.Reloading()
				if err := a.Reload(); err != nil {
					for _, d := range app.Diagnostics(err) {
						log.Error("reload refused: configuration problem", "problem", d.Error())
					}
					log.Error("reload refused; the previous configuration stays in force")
				}
				_ = n.Ready()
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		log.Error("herald stopped with an error", "err", err)
		return sysexits.Software
	}
	return 0
}

func (e env) check(args []string) int {
	fs := e.flags("check")
	cdir := fs.String("config-dir", "", "configuration directory (default /etc/herald)")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		return sysexits.Usage
	}
	paths := app.ResolveAdmin(*cdir, "")
	s, ds := app.CheckAll(paths, shimPaths())
	if s == nil {
		e.printDiags(ds)
		return 1
	}
	for _, w := range s.Notify.Warnings {
		fmt.Fprintln(e.stderr, w.Error())
	}
	where := paths.ConfigDir
	if paths.Embedded {
		where = "embedded default (no " + app.DefaultConfigDir + ")"
	}
	mons := ""
	if m := s.Notify.Monitors; len(m.Heartbeats)+len(m.Usage) > 0 {
		mons = fmt.Sprintf(", %d heartbeats, %d usage watches", len(m.Heartbeats), len(m.Usage))
	}
	fmt.Fprintf(e.stdout, "%s: configuration is valid (%d targets, %d matchers%s)\n",
		where, len(s.Notify.Targets), len(s.Notify.Matchers), mons)
	return 0
}

// readInput reads a named file, or stdin for "-".
func (e env) readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(name)
}

func (e env) printJSON(v any) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(e.stderr, "herald:", err)
		return sysexits.Software
	}
	if _, err := e.stdout.Write(buf.Bytes()); err != nil {
		return sysexits.IOErr
	}
	return 0
}

func (e env) convert(args []string) int {
	fs := e.flags("convert")
	cdir := fs.String("config-dir", "", "configuration directory for classifier sections (default /etc/herald)")
	if fs.Parse(args) != nil || fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "usage: herald convert [--config-dir DIR] FILE.eml|-")
		return sysexits.Usage
	}
	raw, err := e.readInput(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(e.stderr, "herald convert:", err)
		return sysexits.NoInput
	}
	opt := mailconv.Options{} // this host's short name, as the daemon would
	if s, err := app.LoadSettings(app.Resolve(*cdir, ""), shimPaths()); err != nil {
		// The event still shows what the built-ins make of the mail.
		e.printDiags(app.Diagnostics(err))
		fmt.Fprintln(e.stderr, "herald convert: configuration not loaded; classifying with the built-in classifiers only")
		opt.Classifiers = classify.Chain(nil, nil)
	} else {
		opt.Hostname = s.Daemon.Hostname
		opt.Classifiers = app.Classifiers(s)
	}
	ev := mailconv.Convert(raw, opt)
	return e.printJSON(ev)
}

// explanation is what `herald explain` prints.
type explanation struct {
	// Classifier names the classifier that recognised a --mail ("none"
	// when none did); Classification says what else happened.
	Classifier     string                   `json:"classifier,omitempty"`
	Classification *mailconv.Classification `json:"classification,omitempty"`
	Event          *event.Event             `json:"event"`
	At             string                   `json:"at"`
	Matchers       []router.MatcherResult   `json:"matchers"`
	Skipped        []router.SkippedTarget   `json:"skipped,omitempty"`
	Targets        []string                 `json:"targets"`
	// Recipients: each listed mail target's resolved recipients, or an
	// error object when a directory failed (app.ExplainRecipients).
	Recipients map[string]any `json:"recipients"`
	// Heartbeats says what the event means for each heartbeat.
	Heartbeats []monitor.Feeding `json:"heartbeats,omitempty"`
	// Noise says, per target, which noise rule applies and what it would
	// do at that time with the state the daemon holds now.
	Noise []noise.Decision `json:"noise,omitempty"`
	// Mail says where a mail goes by its envelope (explain --mail).
	Mail *mailExplanation `json:"mail,omitempty"`
}

func (e env) explain(args []string) int {
	fs := e.flags("explain")
	cdir := fs.String("config-dir", "", "configuration directory (default /etc/herald)")
	evFile := fs.String("event", "", "event JSON file (- for stdin)")
	mailFile := fs.String("mail", "", "mail file (- for stdin)")
	at := fs.String("at", "", "evaluate calendar rules at this RFC 3339 time (default: the event's timestamp)")
	asJSON := fs.Bool("json", false, "print JSON (the default when stdout is not a terminal)")
	var rcpts listFlag
	fs.Var(&rcpts, "rcpt", "envelope recipient of the mail (repeatable; default: To, Cc and Bcc)")
	if fs.Parse(args) != nil || fs.NArg() > 0 || (*evFile == "") == (*mailFile == "") || (len(rcpts) > 0 && *mailFile == "") {
		fmt.Fprintln(e.stderr, "usage: herald explain [--config-dir DIR] (--event FILE.json | --mail FILE.eml [--rcpt ADDR]...) [--at RFC3339] [--json]")
		return sysexits.Usage
	}
	paths := app.ResolveAdmin(*cdir, "")
	s, err := app.LoadSettings(paths, shimPaths())
	if err != nil {
		e.printDiags(app.Diagnostics(err))
		return sysexits.Config
	}
	var ev *event.Event
	var cls *mailconv.Classification
	var mailExp *mailExplanation
	if *mailFile != "" {
		raw, err := e.readInput(*mailFile)
		if err != nil {
			fmt.Fprintln(e.stderr, "herald explain:", err)
			return sysexits.NoInput
		}
		var res mailconv.Classification
		ev, res = mailconv.ConvertClassified(raw, mailconv.Options{Hostname: s.Daemon.Hostname, Classifiers: app.Classifiers(s)})
		cls = &res
		mailExp = explainMail(s, ev, raw, rcpts)
	} else {
		raw, err := e.readInput(*evFile)
		if err != nil {
			fmt.Fprintln(e.stderr, "herald explain:", err)
			return sysexits.NoInput
		}
		// The same decoding and defaults as the daemon's, so that explain
		// routes an event exactly as the daemon would.
		ev, err = event.Decode(raw)
		if err != nil {
			fmt.Fprintln(e.stderr, "herald explain: event JSON:", err)
			return sysexits.DataErr
		}
		event.Normalize(ev, s.Daemon.Hostname, time.Now())
	}
	when := ev.Timestamp
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintln(e.stderr, "herald explain: --at:", err)
			return sysexits.Usage
		}
		when = t
	}
	cfg := s.Notify
	if mailExp != nil {
		cfg, mailExp.Note = s.RouteConfig(mailExp.Relayed && len(mailExp.Local) == 0)
	}
	r := router.Router{Config: cfg}
	res := r.Route(ev, when)
	targets := append([]string{}, res.Targets...)
	if mailExp != nil && mailExp.Relayed {
		targets = append(targets, relay.Name)
	}
	sort.Strings(targets)
	rcptsOf, err := app.ExplainRecipients(s, targets, ev)
	if err != nil {
		e.printDiags(app.Diagnostics(err))
		return sysexits.Config
	}
	x := explanation{Event: ev, At: when.In(time.Local).Format(time.RFC3339),
		Matchers: res.Matchers, Skipped: res.Skipped, Targets: targets, Recipients: rcptsOf,
		Heartbeats: monitor.Explain(s.Notify.Monitors, ev, nil),
		Noise:      e.planNoise(paths, s, ev, targets, when), Mail: mailExp}
	if cls != nil {
		x.Classifier, x.Classification = cls.Name(), cls
	}
	if *asJSON || !isTerminal(e.stdout) {
		return e.printJSON(x)
	}
	return e.printExplanation(x)
}

// fieldFlags collects repeated --field K=V.
type fieldFlags map[string]string

func (f fieldFlags) String() string { return "" }
func (f fieldFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", v)
	}
	f[k] = val
	return nil
}

func (e env) notify(args []string) int {
	fs := e.flags("notify")
	sev := fs.String("severity", "", "info, notice, warning, error or unknown")
	typ := fs.String("type", "", "event type (the type field)")
	title := fs.String("title", "", "title")
	body := fs.String("body", "", "body text")
	bodyFile := fs.String("body-file", "", "read the body from a file (- for stdin)")
	sdir := fs.String("state-dir", "", "state directory (default /var/lib/herald)")
	fields := fieldFlags{}
	fs.Var(fields, "field", "metadata field K=V (repeatable)")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		return sysexits.Usage
	}
	if *sev == "" || *typ == "" {
		fmt.Fprintln(e.stderr, "herald notify: --severity and --type are required")
		return sysexits.Usage
	}
	s, err := event.ParseSeverity(*sev)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald notify:", err)
		return sysexits.Usage
	}
	if *body != "" && *bodyFile != "" {
		fmt.Fprintln(e.stderr, "herald notify: give --body or --body-file, not both")
		return sysexits.Usage
	}
	text := *body
	if *bodyFile != "" {
		b, err := e.readInput(*bodyFile)
		if err != nil {
			fmt.Fprintln(e.stderr, "herald notify:", err)
			return sysexits.NoInput
		}
		text = string(b)
	}
	ev := &event.Event{Timestamp: time.Now().Truncate(time.Second), Severity: s, Title: *title, Body: text, Fields: fields}
	ev.SetField(event.FieldType, *typ)
	// The daemon fills hostname from herald.cfg unless --field set it.
	line, err := event.JSONLine(ev)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald notify:", err)
		return sysexits.Software
	}
	paths := app.ResolveAdmin("", *sdir)
	id, err := submitEvent(paths, line)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald notify: cannot queue the event:", err)
		return sysexits.TempFail
	}
	fmt.Fprintln(e.stdout, id)
	return 0
}

// submitEvent puts an event into the spool's maildrop, like the sendmail
// shim does with mail. A user who may not write the maildrop (only the
// setgid shim may, in a system install) goes through the daemon's HTTP API
// on loopback instead, which spools it the same way.
func submitEvent(paths app.Paths, line []byte) (string, error) {
	dir, err := app.SpoolDirFor(paths)
	if err != nil {
		return "", err
	}
	d, err := spool.OpenDropDir(dir)
	if err == nil {
		var id string
		id, err = d.Submit(spool.Envelope{Kind: spool.KindEvent, Source: "notify", Received: time.Now()},
			bytes.NewReader(line), 1<<20)
		if err == nil {
			return id, nil
		}
	}
	if !errors.Is(err, fs.ErrPermission) {
		return "", err
	}
	// herald.cfg only: the private notifications file is not this user's
	// to read, and the daemon's address is all that is needed.
	dcfg, lerr := app.LoadDaemonSettings(paths)
	if lerr != nil || len(dcfg.HTTPListen) == 0 {
		return "", fmt.Errorf("%w (and the daemon's HTTP API is not configured)", err)
	}
	url := "http://" + dcfg.HTTPListen[0].String() + "/api/v1/events"
	c := &http.Client{Timeout: 30 * time.Second}
	resp, herr := c.Post(url, "application/json", bytes.NewReader(line))
	if herr != nil {
		return "", fmt.Errorf("%w; through the HTTP API: %v", err, herr)
	}
	defer resp.Body.Close()
	var r struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&r)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("the daemon's HTTP API answered %s %s", resp.Status, r.Error)
	}
	return r.ID, nil
}

func (e env) test(args []string) int {
	fs := e.flags("test")
	cdir := fs.String("config-dir", "", "configuration directory (default /etc/herald)")
	if fs.Parse(args) != nil || fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "usage: herald test [--config-dir DIR] TARGET")
		return sysexits.Usage
	}
	name := fs.Arg(0)
	paths := app.ResolveAdmin(*cdir, "")
	s, err := app.LoadSettings(paths, shimPaths())
	if err != nil {
		e.printDiags(app.Diagnostics(err))
		return sysexits.Config
	}
	if s.Notify.Target(name) == nil {
		var names []string
		for _, t := range s.Notify.Targets {
			names = append(names, t.Name)
		}
		fmt.Fprintf(e.stderr, "herald test: no target named %q; the targets are: %s\n", name, strings.Join(names, ", "))
		return sysexits.Usage
	}
	// Built first: it reads secrets (relay-password-file) that may be
	// root's alone.
	t, err := app.BuildTarget(s, name)
	if err != nil {
		fmt.Fprintln(e.stderr, "herald test:", err)
		return sysexits.Config
	}
	// A local target (mbox, file, mail-to-root's mailbox) writes under the
	// state directory: as root, deliver as its owner, the daemon's user, so
	// that the daemon can use what the test creates.
	if err := app.BecomeStateOwner(paths.StateDir); err != nil && !os.IsNotExist(err) {
		fmt.Fprintln(e.stderr, "herald test:", err)
		return sysexits.NoPerm
	}
	// A relay or webhook may take up to the timeout to answer: say what
	// is going on meanwhile.
	fmt.Fprintf(e.stderr, "herald test: sending a test notification to %s (%s target), waiting up to 60 s for its answer...\n",
		name, s.Notify.Target(name).Type)
	ev := &event.Event{ID: event.NewID(), Timestamp: time.Now().Truncate(time.Second), Severity: event.Info,
		Title: "Test notification", Body: fmt.Sprintf("This is a test of the notification target '%s'.", name),
		Fields: map[string]string{event.FieldType: "test", event.FieldHostname: s.Daemon.Hostname}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := t.Deliver(ctx, ev); err != nil {
		kind := "permanent"
		if target.IsTemporary(err) {
			kind = "temporary"
		}
		fmt.Fprintf(e.stdout, "%s: FAILED (%s): %v\n", name, kind, err)
		var te *target.Error
		if errors.As(err, &te) && te.Reply != "" {
			fmt.Fprintf(e.stdout, "server answered: %s\n", te.Reply)
		}
		return 1
	}
	fmt.Fprintf(e.stdout, "%s: OK, test notification delivered\n", name)
	return 0
}
