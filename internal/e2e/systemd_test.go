package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"herald/internal/testkit"
)

// TestSocketActivation starts herald under the real systemd-socket-activate
// with a socket named "smtp" (the name herald.socket gives it): herald binds
// nothing itself and a real client's mail arrives through the inherited
// socket.
func TestSocketActivation(t *testing.T) {
	activate := needTool(t, "systemd-socket-activate")
	swaks := needTool(t, "swaks")
	d := newDaemon(t, fileOnly)
	// herald.cfg names another port: if herald bound it, the test would
	// still pass through that port, so make its own listeners impossible.
	writeFile(t, filepath.Join(d.configDir, "herald.cfg"), "hostname testhost\nsmtp-listen 192.0.2.1:25\nhttp-listen none\n", 0o644)
	port := freePort(t)
	cmd := exec.Command(activate, "-l", fmt.Sprintf("127.0.0.1:%d", port), "--fdname=smtp",
		"-E", "HERALD_CONFIG_DIR="+d.configDir, "-E", "HERALD_STATE_DIR="+d.stateDir, d.herald, "serve")
	cmd.Env = d.env()
	logs, _ := startBackground(t, cmd)
	// systemd-socket-activate listens itself and starts herald on the first
	// connection, which swaks makes.
	out, err := exec.Command(swaks, "--server", "127.0.0.1", "--port", fmt.Sprint(port), "--to", "root@localhost",
		"--header", "Subject: through the inherited socket", "--body", "activated").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s\nherald:\n%s", err, out, logs.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(d.stateDir, "events.jsonl"))
		if strings.Contains(string(b), "through the inherited socket") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "192.0.2.1") && !strings.Contains(logs.String(), fmt.Sprint(port)) {
		t.Fatalf("herald used its own listener:\n%s", logs.String())
	}
}

// notifySocket is a fake systemd NOTIFY_SOCKET collecting datagrams.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := c.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) count(substr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.Contains(m, substr) {
			c++
		}
	}
	return c
}

// TestSystemdNotify runs the real daemon with a fake NOTIFY_SOCKET:
// READY=1 once it listens, WATCHDOG=1 pings while healthy, RELOADING=1 then
// READY=1 around SIGHUP, STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	d := newDaemon(t, fileOnly)
	ns := newNotifySocket(t)
	cmd := exec.Command(d.herald, "serve")
	cmd.Env = append(d.env(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=400000")
	var logs testkit.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Without WATCHDOG_PID, go-systemd treats the watchdog as meant for
	// this process.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				ns.mu.Lock()
				t.Fatalf("waited for %s; datagrams %q\n%s", what, ns.msgs, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("READY=1", func() bool { return ns.count("READY=1") >= 1 })
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", d.port)); err != nil {
		t.Fatalf("READY sent before the listener accepts: %v", err)
	} else {
		c.Close()
	}
	wait("three watchdog pings", func() bool { return ns.count("WATCHDOG=1") >= 3 })
	_ = cmd.Process.Signal(syscall.SIGHUP)
	wait("RELOADING=1 and a second READY=1", func() bool { return ns.count("RELOADING=1") == 1 && ns.count("READY=1") >= 2 })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("herald exited with %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("herald did not stop on SIGTERM")
	}
	if ns.count("STOPPING=1") != 1 {
		t.Fatalf("no STOPPING=1: %q", ns.msgs)
	}
}

// An invalid configuration makes herald exit 78 (EX_CONFIG), which
// herald.service's RestartPreventExitStatus=78 keeps from restarting.
func TestBadConfigExit78(t *testing.T) {
	d := newDaemon(t, "matcher: m\n\tmatch-severity fatal\n")
	out, code := d.runCode("", nil, d.herald, "serve")
	if code != 78 || !strings.Contains(out, "notifications.cfg:2") {
		t.Fatalf("exit %d, want 78; output:\n%s", code, out)
	}
}
