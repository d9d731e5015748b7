// Package exec holds herald's exec target: it runs a command for each event,
// with the event as one JSON line on standard input and as HERALD_*
// variables in a minimal, clean environment. Exit status 0 means delivered,
// 75 (EX_TEMPFAIL) asks for a retry, any other status is a permanent failure.
//
// The command is a shell command line run with /bin/sh -c, as cron runs its
// lines, so pipes, redirections and arguments work as an administrator
// expects. It runs in its own process group; when it outlives its timeout or
// the delivery is cancelled, the whole group is killed, so a hook script
// cannot leave orphans behind.
//
// Delivery is at least once: a command cannot be asked afterwards whether
// it ran, so when the daemon dies while a command runs (or after it ended,
// before the outcome was recorded), the queue runs it again for that event
// at the next start. A hook that must not act twice keys on HERALD_EVENT_ID
// (stable across retries). See docs/delivery-guarantees.md.
//
// Bacula's Messages resource sends reports to the destinations `file` and
// `append` (a log file), `syslog`, and `mail`/`operator` (piped into
// mailcommand/operatorcommand, usually bsmtp). In herald these map onto the
// `file` target (one JSON line per event, appended), the `journal` target
// (which writes a syslog line where there is no journal), and this `exec`
// target, which runs a command per event as operatorcommand does, but hands
// it a structured event instead of a mail.
package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"herald/internal/event"
	"herald/internal/target"
)

// Defaults and limits.
const (
	// DefaultTimeout bounds one run of the command.
	DefaultTimeout = 60 * time.Second
	// ExitTempFail is sysexits.h EX_TEMPFAIL: the command asks for a retry.
	ExitTempFail = 75
	// MaxEnvValue bounds each HERALD_* value. The kernel refuses a single
	// environment string over 128 KiB (MAX_ARG_STRLEN) and the whole
	// environment beyond a few MiB; standard input always has everything.
	MaxEnvValue = 64 << 10
	// maxStderr is how much of the end of standard error a failure keeps.
	maxStderr = 1024
	// shell runs the command line.
	shell = "/bin/sh"
)

// BaseEnv is the environment every command starts from. herald's own
// environment is never passed on: it may name the credentials directory or
// hold other secrets, and a hook should behave the same however herald was
// started.
var BaseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
	"HOME=/",
}

// Options configure an exec target.
type Options struct {
	// Command is a shell command line, run as /bin/sh -c Command.
	Command string
	// Timeout bounds one run; zero means DefaultTimeout.
	Timeout time.Duration
	// Env holds extra KEY=value variables, added after BaseEnv (so they
	// can override PATH, LANG and HOME) and before the HERALD_* ones.
	Env []string
	// Dir is the working directory; empty means "/", so that the command
	// does not depend on where herald happens to run.
	Dir string
}

// Target runs a command per event. It is safe for concurrent use.
type Target struct {
	opt Options
	// waitDelay bounds how long Deliver waits, after the command exits or
	// is killed, for a leftover background process to close stdin/stderr.
	waitDelay time.Duration
}

var _ target.Target = (*Target)(nil)

// New checks opt and returns the target. An empty command, a negative
// timeout and an Env entry that is not KEY=value are errors.
func New(opt Options) (*Target, error) {
	if strings.TrimSpace(opt.Command) == "" {
		return nil, errors.New("exec: empty command")
	}
	if strings.ContainsRune(opt.Command, 0) {
		return nil, errors.New("exec: command contains a NUL byte")
	}
	if opt.Timeout < 0 {
		return nil, fmt.Errorf("exec: negative timeout %v", opt.Timeout)
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	for _, kv := range opt.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, fmt.Errorf("exec: environment entry %q is not KEY=value", kv)
		}
	}
	opt.Env = slices.Clone(opt.Env)
	if opt.Dir == "" {
		opt.Dir = "/"
	}
	return &Target{opt: opt, waitDelay: 2 * time.Second}, nil
}

// Deliver runs the command once for ev. Exit 0 is success; exit 75 and a
// timeout (or cancellation) are temporary; death by a signal herald did not
// send is temporary too (the OOM killer, an admin's kill); any other exit
// status is permanent. Failures carry the last KiB of standard error as
// their Reply.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	if ev == nil {
		return target.Permanent(errors.New("exec: nil event"))
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return target.Permanent(fmt.Errorf("exec: encoding event: %w", err))
	}
	payload = append(payload, '\n')

	runCtx, cancel := context.WithTimeout(ctx, t.opt.Timeout)
	defer cancel()
	cmd := osexec.CommandContext(runCtx, shell, "-c", t.opt.Command)
	cmd.Env = t.environ(ev)
	cmd.Dir = t.opt.Dir
	cmd.Stdin = bytes.NewReader(payload)
	stderr := &tail{max: maxStderr}
	cmd.Stderr = stderr // stdout goes to /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Setpgid made the shell the leader of a group whose id is its
		// pid; killing the group takes its children along.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = t.waitDelay

	err = cmd.Run()
	if err == nil {
		return nil
	}
	reply := stderr.String()
	fail := func(temp bool, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if reply != "" {
			msg += ": " + reply
		}
		return &target.Error{Err: errors.New(msg), Temp: temp, Reply: reply}
	}

	var exitErr *osexec.ExitError
	switch {
	case cmd.ProcessState == nil && ctx.Err() != nil:
		return target.Temporary(fmt.Errorf("exec: delivery cancelled before start: %w", ctx.Err()), 0)
	case cmd.ProcessState == nil:
		// It never started: no shell, a bad directory, no resources. A
		// failed chdir reads "fork/exec /bin/sh: no such file or
		// directory", which blames the shell; name the directory instead.
		if _, serr := os.Stat(t.opt.Dir); serr != nil {
			return target.Permanent(fmt.Errorf("exec: working directory: %w", serr))
		}
		return &target.Error{Err: fmt.Errorf("exec: starting %s: %w", shell, err), Temp: transientStart(err)}
	case ctx.Err() != nil:
		return fail(true, "exec: delivery cancelled (%v); process group killed", ctx.Err())
	case runCtx.Err() != nil:
		return fail(true, "exec: command timed out after %v; process group killed", t.opt.Timeout)
	case errors.Is(err, osexec.ErrWaitDelay) && cmd.ProcessState.Success():
		// The command succeeded; something it left running in the
		// background held stdin or stderr open, and we stopped waiting.
		return nil
	case errors.As(err, &exitErr):
		ws, _ := exitErr.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			return fail(true, "exec: command killed by signal %v", ws.Signal())
		case ws.ExitStatus() == ExitTempFail:
			return fail(true, "exec: command asked for a retry (exit status %d)", ExitTempFail)
		default:
			return fail(false, "exec: command exited with status %d", ws.ExitStatus())
		}
	default:
		return fail(true, "exec: %v", err)
	}
}

// transientStart reports whether a failure to start the command may go away
// by itself (out of processes, memory or descriptors); anything else (no
// /bin/sh, a missing directory) needs an administrator.
func transientStart(err error) bool {
	for _, e := range []error{syscall.EAGAIN, syscall.ENOMEM, syscall.ENFILE, syscall.EMFILE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// environ builds the command's environment: BaseEnv, the configured extras,
// then the event. Field names are sanitised exactly as the journal target
// does (event.ExportName), so HERALD_FIELD_JOB_ID means the same in both.
// os/exec keeps the last of duplicate keys, so extras override BaseEnv.
func (t *Target) environ(ev *event.Event) []string {
	env := slices.Concat(BaseEnv, t.opt.Env)
	add := func(k, v string) {
		env = append(env, k+"="+envValue(v))
	}
	add("HERALD_EVENT_ID", ev.ID)
	add("HERALD_SEVERITY", ev.Severity.String())
	add("HERALD_TITLE", ev.Title)
	add("HERALD_BODY", ev.Body)
	if len(strings.ReplaceAll(ev.Body, "\x00", "")) > MaxEnvValue {
		// Tell the script that the whole body is only on stdin.
		add("HERALD_BODY_TRUNCATED", "1")
	}
	add("HERALD_TIMESTAMP", ev.Timestamp.Format(time.RFC3339))
	add("HERALD_TYPE", ev.Fields[event.FieldType])
	add("HERALD_HOSTNAME", ev.Fields[event.FieldHostname])
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		keys = append(keys, k)
	}
	// Sorted, so that when two names sanitise alike the winner is
	// predictable (the last in byte order).
	slices.Sort(keys)
	for _, k := range keys {
		add(event.ExportName(k), ev.Fields[k])
	}
	return env
}

// envValue makes v fit an environment variable: NUL bytes (which cannot be
// passed) are dropped and the value is cut to MaxEnvValue bytes on a
// character boundary.
func envValue(v string) string {
	v = strings.ReplaceAll(v, "\x00", "")
	if len(v) <= MaxEnvValue {
		return v
	}
	cut := MaxEnvValue
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut]
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

// String returns the kept bytes, trimmed of surrounding white space, starting
// on a character boundary and marked with "..." when earlier output was
// dropped.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.truncated {
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	s := strings.TrimSpace(string(b))
	if t.truncated && s != "" {
		s = "..." + s
	}
	return s
}

// IgnoresMail tells the delivery queue that this target never reads the raw
// mail (target.MailBlind).
func (t *Target) IgnoresMail() bool { return true }
