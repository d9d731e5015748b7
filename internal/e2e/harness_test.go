// Package e2e holds herald's end-to-end tests: they build the real binaries
// once, start the real daemon and drive it with real clients (bsmtp, swaks,
// bsd-mailx, Python's smtplib, the sendmail shim with the argv real callers
// pass) over loopback, and check the events the file target wrote.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/testkit"
)

var bins struct {
	once     sync.Once
	dir      string
	herald   string
	sendmail string
	err      error
}

// buildBinaries builds herald and herald-sendmail once per test run.
func buildBinaries(t testing.TB) (herald, shim string) {
	t.Helper()
	bins.once.Do(func() {
		dir, err := os.MkdirTemp("", "herald-e2e-bin-")
		if err != nil {
			bins.err = err
			return
		}
		bins.dir = dir
		root := moduleRoot()
		for _, b := range []struct{ out, pkg string }{
			{filepath.Join(dir, "herald"), "./cmd/herald"},
			{filepath.Join(dir, "herald-sendmail"), "./cmd/herald-sendmail"},
		} {
			// Built as `make build` builds what ships (static, stripped), so
			// the tests and the memory figures are the package's binaries.
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.out, b.pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		bins.herald = filepath.Join(dir, "herald")
		bins.sendmail = filepath.Join(dir, "herald-sendmail")
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.herald, bins.sendmail
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

func moduleRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}

// needTool fails (never skips) when a real client is missing.
func needTool(t testing.TB, name string) string {
	t.Helper()
	return testkit.Tool(t, name, "listed in scripts/install-test-deps.sh")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemon is one herald serve process with its own config and state.
type daemon struct {
	t         testing.TB
	herald    string
	shim      string
	configDir string
	stateDir  string
	port      int
	httpPort  int
	// eventsFile is where the file target writes ("" = STATE/events.jsonl).
	eventsFile string
	cmd        *exec.Cmd
	logs       *testkit.Buffer
	done       chan error
	// restarts counts the restarts of killRepeatedly so far: which
	// incarnation of the daemon a client talked to.
	restarts atomic.Int64
}

const defaultNotifications = `file: events
	path %[1]s/events.jsonl

mbox: mailbox
	path %[1]s/mail/root

matcher: everything
	target events
	target mailbox
`

// newDaemon prepares a config dir (herald.cfg with a free port, a
// notifications.cfg routing everything to a file and an mbox) and a state
// dir. notifications may override the notifications.cfg text (%[1]s is the
// state dir).
func newDaemon(t testing.TB, notifications string) *daemon {
	t.Helper()
	herald, shim := buildBinaries(t)
	base := t.TempDir()
	d := &daemon{t: t, herald: herald, shim: shim,
		configDir: filepath.Join(base, "etc"), stateDir: filepath.Join(base, "state"),
		port: freePort(t), httpPort: freePort(t), logs: &testkit.Buffer{}}
	if err := os.MkdirAll(d.configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if notifications == "" {
		notifications = defaultNotifications
	}
	if strings.Contains(notifications, "%[1]s") {
		notifications = fmt.Sprintf(notifications, d.stateDir)
	}
	writeFile(t, filepath.Join(d.configDir, "notifications.cfg"), notifications, 0o644)
	writeFile(t, filepath.Join(d.configDir, "herald.cfg"), fmt.Sprintf(
		"hostname testhost\nsmtp-listen 127.0.0.1:%d\nsmtp-listen [::1]:%d\nhttp-listen 127.0.0.1:%d\nmail-dir %s\n",
		d.port, d.port, d.httpPort, filepath.Join(d.stateDir, "mail")), 0o644)
	t.Cleanup(d.stop)
	return d
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// env is the environment every herald process of this daemon runs with.
func (d *daemon) env() []string {
	return append(os.Environ(), "HERALD_CONFIG_DIR="+d.configDir, "HERALD_STATE_DIR="+d.stateDir)
}

// readyLine is the daemon's log line once every listener is bound.
const readyLine = `msg="herald ready"`

// start runs herald serve and waits until it accepts SMTP connections and
// has bound every listener.
func (d *daemon) start() {
	d.t.Helper()
	if err := d.tryStart(); err != nil {
		d.t.Fatal(err)
	}
}

// tryStart is start for goroutines other than the test's own.
func (d *daemon) tryStart() error {
	// Ready is logged once every listener is bound: the SMTP port alone
	// accepts connections before the HTTP port and the sockets exist.
	ready := strings.Count(d.log(), readyLine)
	cmd := exec.Command(d.herald, "serve")
	cmd.Env = d.env()
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd = cmd
	d.done = make(chan error, 1)
	go func() { d.done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			if strings.Count(d.log(), readyLine) > ready {
				return nil
			}
		}
		select {
		case err := <-d.done:
			d.cmd = nil
			return fmt.Errorf("herald serve exited before listening: %v\n%s", err, d.log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("herald serve did not listen on port %d and report ready within 20 s\n%s", d.port, d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) log() string { return d.logs.String() }

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.cmd = nil
}

// stop asks herald to stop (SIGTERM) and waits, killing it after 15 s.
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.t.Errorf("herald did not stop within 15 s of SIGTERM; killing it\n%s", d.log())
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

// events reads every event the file target wrote so far.
// titlesOnce counts the events in the file target by title and reports
// every title written more than once: the crash tests give each message a
// title of its own, so a repeated one is a message delivered twice.
func (d *daemon) titlesOnce(t *testing.T) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, ev := range d.events() {
		count[ev.Title]++
	}
	for s, n := range count {
		if n > 1 {
			t.Errorf("message %s delivered %d times", s, n)
		}
	}
	return count
}

func (d *daemon) events() []event.Event {
	d.t.Helper()
	path := d.eventsFile
	if path == "" {
		path = filepath.Join(d.stateDir, "events.jsonl")
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	var out []event.Event
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			// A line without its newline is still being appended (a
			// large event takes several writes): read it next time.
			return out
		}
		if err != nil {
			d.t.Fatal(err)
		}
		var ev event.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			d.t.Fatalf("events.jsonl holds a line that is not an event: %v: %.300q", err, line)
		}
		out = append(out, ev)
	}
}

// waitEvents waits until at least n events were written, or fails.
func (d *daemon) waitEvents(n int, timeout time.Duration) []event.Event {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := d.events()
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("waited %v for %d events, have %d\ndaemon log:\n%s", timeout, n, len(evs), d.log())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitEvent waits for an event whose title is title.
func (d *daemon) waitEvent(title string) event.Event {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, ev := range d.events() {
			if ev.Title == title {
				return ev
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no event titled %q within 60 s\ndaemon log:\n%s", title, d.log())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// run runs a command with the daemon's environment and stdin, failing the
// test on a non-zero exit or after a deadline.
func (d *daemon) run(stdin string, name string, args ...string) string {
	d.t.Helper()
	out, code := d.runCode(stdin, nil, name, args...)
	if code != 0 {
		d.t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

func (d *daemon) runCode(stdin string, extraEnv []string, name string, args ...string) (string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(d.env(), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		d.t.Fatalf("%s did not finish within 30 s", name)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		d.t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}
