package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"herald/internal/control"
	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/target"
)

// Every command and subcommand answers --help (and -h) with its usage on
// stdout and exit 0, touching nothing: `herald convert --help` once opened
// a file named --help.
func TestHelpEverywhere(t *testing.T) {
	t.Setenv("HERALD_STATE_DIR", t.TempDir())
	t.Setenv("HERALD_CONFIG_DIR", t.TempDir())
	cases := [][]string{
		{"--help"}, {"-h"}, {"help"}, {"help", "queue"},
		{"serve", "--help"}, {"check", "--help"}, {"convert", "--help"}, {"explain", "--help"},
		{"notify", "--help"}, {"test", "--help"}, {"queue", "--help"}, {"status", "--help"},
		{"version", "--help"}, {"queue", "list", "--help"}, {"queue", "show", "--help"},
		{"queue", "retry", "--help"}, {"queue", "drop", "--help"}, {"queue", "flush", "--help"},
		{"notify", "--severity", "error", "-h"}, {"test", "mail-to-root", "--help"},
		{"monitors", "--help"}, {"monitors", "pause", "--help"}, {"history", "--help"}, {"web", "--help"},
	}
	// Every command in the table above: a new command needs its case.
	for _, name := range commandNames() {
		found := false
		for _, c := range cases {
			found = found || (c[0] == name && c[len(c)-1] == "--help")
		}
		if !found {
			t.Errorf("command %s has no --help case here", name)
		}
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, stderr, code := run(t, "", args...)
			want := "usage: herald"
			if len(args) > 1 && args[0] != "help" && args[0] != "--help" {
				want = "usage: herald " + args[0]
			}
			if code != 0 || !strings.Contains(out, want) || stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and %q", code, out, stderr, want)
			}
		})
	}
}

func TestUnknownCommandListsTheValidOnes(t *testing.T) {
	_, stderr, code := run(t, "", "mailqueue")
	if code != 64 || !strings.Contains(stderr, `unknown command "mailqueue"`) {
		t.Fatalf("exit %d %q", code, stderr)
	}
	for _, name := range commandNames() {
		if !strings.Contains(stderr, name) {
			t.Errorf("the message does not name %s: %q", name, stderr)
		}
	}
}

func TestQueueUsageErrors(t *testing.T) {
	t.Setenv("HERALD_STATE_DIR", t.TempDir())
	for _, args := range [][]string{
		{"queue"}, {"queue", "list", "x"}, {"queue", "show"}, {"queue", "retry"}, {"queue", "retry", "a", "--all"},
		{"queue", "drop", "x", "--dead"}, {"queue", "retry", "--all", "--dead"}, {"queue", "flush", "x"}, {"queue", "bogus"},
	} {
		if _, stderr, code := run(t, "", args...); code != 64 || !strings.Contains(stderr, "usage: herald queue") {
			t.Errorf("%v: exit %d %q", args, code, stderr)
		}
	}
	// Without a daemon and before any start: empty, and nothing to act on.
	if out, _, code := run(t, "", "queue", "list"); code != 0 || !strings.Contains(out, "queue is empty") {
		t.Errorf("queue list: %d %q", code, out)
	}
	if _, stderr, code := run(t, "", "queue", "retry", "--all"); code != 0 || stderr != "" {
		t.Errorf("queue retry --all on nothing: %d %q", code, stderr)
	}
	if _, stderr, code := run(t, "", "queue", "flush"); code == 0 || !strings.Contains(stderr, "not running") {
		t.Errorf("queue flush without a daemon: %d %q", code, stderr)
	}
}

func TestFormatMailq(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.Local)
	empty := formatMailq(control.Mailq{})
	if empty != "Mail queue is empty\n" {
		t.Errorf("empty: %q", empty)
	}
	m := control.Mailq{
		Spool: []control.MailqEntry{{ID: "18ed58c5-0001", Size: 1200, Received: at, From: "alice@pve1.example.org", Recipients: []string{"root"}, UID: 1000, Source: "sendmail"}},
		Queue: []delivery.Item{{EventID: "18ed58c5-0002", Created: at, From: "root@pve1.example.org", Recipients: []string{"boss@example.com", "root"}, Size: 3000,
			Deliveries: []delivery.Delivery{
				{Target: "herald-relay", State: delivery.StatePending, Attempts: 2, LastError: "451 4.3.0 try later"},
				{Target: "mail-to-root", State: delivery.StateDead, Attempts: 1, LastError: "no local user"},
			}}},
		Remote: map[string][]string{"18ed58c5-0002": {"boss@example.com"}},
	}
	got := formatMailq(m)
	for _, want := range []string{
		"-Queue ID-                --Size-- ----Arrival Time---- -Sender/Recipient-------\n",
		"18ed58c5-0001                 1200 Tue Dec  1 09:30:00  alice@pve1.example.org (uid 1000, sendmail)\n",
		"(accepted, waiting to be processed)\n",
		"18ed58c5-0002                 3000 Tue Dec  1 09:30:00  root@pve1.example.org\n",
		"(herald-relay pending, 2 attempts: 451 4.3.0 try later)\n",
		"                                                        boss@example.com\n",
		"(mail-to-root dead, 1 attempts: no local user)\n",
		"target mail-to-root\n",
		"-- 5 Kbytes in 2 Requests (1 dead deliveries: herald queue retry or drop).\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("mailq lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "empty") {
		t.Errorf("mailq says empty with mail waiting:\n%s", got)
	}
	m.Queue[0].Deliveries[0].State, m.Queue[0].Deliveries[1].State = delivery.StateInflight, delivery.StateInflight
	if got := formatMailq(m); !strings.Contains(got, "18ed58c5-0002*  ") {
		t.Errorf("a mail being delivered is not marked with one *:\n%s", got)
	}
}

// The queue commands without a daemon, on a queue a daemon left: list
// shows pending and dead (--all adds done), an event ID lists its
// deliveries, retry/drop --all act on every one, and completion lists the
// IDs.
func TestQueueCommandsOffline(t *testing.T) {
	state := t.TempDir()
	t.Setenv("HERALD_STATE_DIR", state)
	t.Setenv("HERALD_CONFIG_DIR", t.TempDir())
	dead := target.Permanent(errors.New("550 no"))
	q, err := delivery.Open(delivery.Options{Dir: filepath.Join(state, "queue"),
		Target: func(name string) (target.Target, bool) {
			return targetFunc(func(context.Context, *event.Event) error {
				if name == "bad" {
					return dead
				}
				return nil
			}), true
		}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{ID: "ev1", Timestamp: time.Now(), Title: "t", Fields: map[string]string{"type": "x"}}
	if err := q.Enqueue(ev, []string{"bad", "good", "later"}); err != nil {
		t.Fatal(err)
	}
	// Deliver "bad" and "good" only: run the loop until both are settled.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds, _ := q.List()
		settled := 0
		for _, d := range ds {
			if d.State == delivery.StateDone || d.State == delivery.StateDead {
				settled++
			}
		}
		if settled == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not settled: %+v", ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	out, _, code := run(t, "", "queue", "list")
	if code != 0 || !strings.Contains(out, "ev1.bad") || strings.Contains(out, "ev1.good") || !strings.Contains(out, "1 dead") {
		t.Errorf("queue list: %d\n%s", code, out)
	}
	out, _, _ = run(t, "", "queue", "list", "--all")
	if !strings.Contains(out, "ev1.good") || !strings.Contains(out, "2 done") {
		t.Errorf("queue list --all:\n%s", out)
	}
	out, _, code = run(t, "", "queue", "show", "ev1")
	if code != 0 || !strings.Contains(out, "event ev1 has 3 deliveries") {
		t.Errorf("queue show EVENT: %d\n%s", code, out)
	}
	out, stderr, code := run(t, "", "queue", "retry", "ev1")
	if code != 1 || !strings.Contains(stderr, "ev1 is an event") || !strings.Contains(out, "ev1.bad") {
		t.Errorf("queue retry EVENT: %d %q\n%s", code, stderr, out)
	}
	out, _, code = run(t, "", "queue", "show", "ev1.bad")
	if code != 0 || !strings.Contains(out, `"last_error": "550 no"`) || !strings.Contains(out, `"event_id": "ev1"`) || strings.Contains(out, "LastError") {
		t.Errorf("queue show ID (snake_case keys): %d\n%s", code, out)
	}
	out, _, _ = run(t, "", "__complete", "deliveries")
	if !strings.Contains(out, "ev1.bad\n") {
		t.Errorf("__complete deliveries: %q", out)
	}
	out, stderr, code = run(t, "", "queue", "drop", "--all", "--dead")
	if code != 0 || !strings.Contains(out, "ev1.bad: dropped") || !strings.Contains(out, "1 deliveries dropped") {
		t.Errorf("drop --all --dead: %d %q\n%s", code, stderr, out)
	}
	if out, _, _ := run(t, "", "queue", "list"); !strings.Contains(out, "queue is empty") {
		t.Errorf("after drop:\n%s", out)
	}
}

type targetFunc func(context.Context, *event.Event) error

func (f targetFunc) Deliver(ctx context.Context, ev *event.Event) error { return f(ctx, ev) }

// herald check reports the problems of every file in one run: a broken
// herald.cfg does not hide a broken notifications.cfg or template.
func TestCheckReportsEveryFile(t *testing.T) {
	d := t.TempDir()
	writeTestFile(t, filepath.Join(d, "herald.cfg"), "relay-mode ssl\nbogus 1\n")
	writeTestFile(t, filepath.Join(d, "notifications.cfg"), "matcher: m1\n\ttarget nope\n")
	writeTestFile(t, filepath.Join(d, "templates", "default-title.txt.hbs"), "{{#if}}\n")
	out, stderr, code := run(t, "", "check", "--config-dir", d)
	if code != 1 || out != "" {
		t.Fatalf("exit %d out %q", code, out)
	}
	for _, want := range []string{
		"herald.cfg:1: invalid relay-mode",
		"herald.cfg:2: unknown setting 'bogus'",
		"notifications.cfg:2: warning: matcher 'm1': target 'nope' does not exist", // Proxmox loads it
		"default-title.txt.hbs:1",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check does not report %q:\n%s", want, stderr)
		}
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// explain: JSON in a pipe and with --json (the shape scripts parse, with
// the mail decision added), a readable summary on a terminal.
func TestExplainMailDecision(t *testing.T) {
	d := t.TempDir()
	writeTestFile(t, filepath.Join(d, "herald.cfg"), "relay 127.0.0.1:2525\nrelay-mode insecure\nmail-name pve1.example.org\nhostname pve1\n")
	mail := filepath.Join(d, "m.eml")
	writeTestFile(t, mail, "To: boss@example.com, root\nCc: ops@pve1.example.org\nSubject: weekly report\n\nnumbers\n")
	for _, args := range [][]string{{"--mail", mail}, {"--mail", mail, "--json"}} {
		out, stderr, code := run(t, "", append([]string{"explain", "--config-dir", d}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, stderr)
		}
		var x struct {
			Event   event.Event
			Targets []string
			Mail    mailExplanation
		}
		if err := json.Unmarshal([]byte(out), &x); err != nil {
			t.Fatalf("%v: not JSON: %v\n%s", args, err, out)
		}
		if !slices.Equal(x.Targets, []string{"herald-relay", "mail-to-root"}) || !x.Mail.Relayed ||
			!slices.Equal(x.Mail.Remote, []string{"boss@example.com"}) || !slices.Equal(x.Mail.Local, []string{"root", "ops@pve1.example.org"}) ||
			x.Event.Fields["to"] != "boss@example.com, root, ops@pve1.example.org" {
			t.Errorf("%v: %+v", args, x)
		}
	}
	// Relayed to every recipient: the built-in default-matcher does not
	// copy it to root; a matcher of the admin's would route it.
	out, _, code := run(t, "", "explain", "--config-dir", d, "--mail", mail, "--rcpt", "boss@example.com")
	var only struct {
		Targets []string
		Mail    mailExplanation
	}
	if err := json.Unmarshal([]byte(out), &only); code != 0 || err != nil || !slices.Equal(only.Targets, []string{"herald-relay"}) ||
		!strings.Contains(only.Mail.Note, "default-matcher does not apply") {
		t.Errorf("--rcpt boss@example.com: %d %v\n%s", code, err, out)
	}
	writeTestFile(t, filepath.Join(d, "notifications.cfg"), "file: log\n\tpath /tmp/x.jsonl\n\nmatcher: everything\n\ttarget log\n")
	out, _, _ = run(t, "", "explain", "--config-dir", d, "--mail", mail, "--rcpt", "boss@example.com")
	only.Targets = nil
	if err := json.Unmarshal([]byte(out), &only); err != nil || !slices.Equal(only.Targets, []string{"herald-relay", "log"}) {
		t.Errorf("with the admin's own matcher: %v\n%s", err, out)
	}
	out, _, code = run(t, "", "explain", "--config-dir", d, "--mail", mail, "--rcpt", "root")
	if code != 0 || !strings.Contains(out, `"rule": "all recipients are local`) || !strings.Contains(out, `"remote": []`) {
		t.Errorf("--rcpt root:\n%s", out)
	}
	var b strings.Builder
	e := env{stdout: &b, stderr: &b}
	x := explanation{Event: &event.Event{Title: "weekly report", Fields: map[string]string{"type": "system-mail"}},
		Targets: []string{"herald-relay", "mail-to-root"}, Mail: &mailExplanation{Rule: "relayed as-is to boss@example.com", Remote: []string{"boss@example.com"}}}
	if code := e.printExplanation(x); code != 0 {
		t.Fatal(code)
	}
	for _, want := range []string{"event    weekly report", "mail     relayed as-is to boss@example.com", "remote: boss@example.com", "targets  herald-relay, mail-to-root", "--json"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestTestCommandNamesTargetsAndSaysWhatItDoes(t *testing.T) {
	d := t.TempDir()
	out := filepath.Join(t.TempDir(), "events.jsonl")
	writeTestFile(t, filepath.Join(d, "notifications.cfg"), "file: events\n\tpath "+out+"\n")
	t.Setenv("HERALD_STATE_DIR", t.TempDir())
	_, stderr, code := run(t, "", "test", "--config-dir", d, "nope")
	if code != 64 || !strings.Contains(stderr, `no target named "nope"; the targets are: events, mail-to-root`) {
		t.Errorf("unknown target: exit %d %q", code, stderr)
	}
	stdout, stderr, code := run(t, "", "test", "--config-dir", d, "events")
	if code != 0 || !strings.Contains(stdout, "events: OK") || !strings.Contains(stderr, "sending a test notification to events (file target)") {
		t.Errorf("test events: exit %d %q %q", code, stdout, stderr)
	}
}

// herald(8) describes every command.
func TestManPageListsEveryCommand(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "man", "herald.8"))
	if err != nil {
		t.Fatal(err)
	}
	_, commandsSection, ok := strings.Cut(string(b), ".SH COMMANDS")
	if !ok {
		t.Fatal("herald.8 has no COMMANDS section")
	}
	for _, name := range commandNames() {
		if !strings.Contains(commandsSection, ".TP\n.B "+name+"\n") {
			t.Errorf("herald(8) does not describe %s under COMMANDS", name)
		}
	}
}
