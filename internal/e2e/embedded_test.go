package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/testkit"
)

// TestEmbeddedDefault runs `herald serve` exactly as `make run` does: no
// config, no HERALD_* variables, state under ./var, SMTP on 127.0.0.1:2525
// and [::1]:2525, events in var/events.jsonl, mail in the mbox var/mail/root
// (docs/interfaces.md §4; these paths and the port are contracts).
func TestEmbeddedDefault(t *testing.T) {
	herald, shim := buildBinaries(t)
	swaks := needTool(t, "swaks")
	if _, err := os.Stat("/etc/herald"); err == nil {
		t.Fatal("/etc/herald exists on this machine, so herald would not use its embedded default; run this test where herald is not installed")
	}
	if l, err := net.Listen("tcp", "127.0.0.1:2525"); err != nil {
		t.Fatalf("port 2525 is taken by another program, the embedded default cannot listen: %v", err)
	} else {
		l.Close()
	}
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(herald, "serve")
	cmd.Dir = dir
	cmd.Env = env
	logs, done := startBackground(t, cmd)
	waitPort(t, "127.0.0.1:2525", done, logs)
	waitPort(t, "[::1]:2525", done, logs)

	run := func(stdin string, extraEnv []string, name string, args ...string) {
		t.Helper()
		c := exec.Command(name, args...)
		c.Dir = dir
		c.Env = append(append([]string{}, env...), extraEnv...)
		c.Stdin = strings.NewReader(stdin)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	run("", nil, swaks, "--server", "127.0.0.1", "--port", "2525", "--to", "root@localhost",
		"--header", "Subject: embedded via swaks", "--body", "hello embedded")
	run("Subject: embedded via shim\n\nfrom the shim\n", []string{"HERALD_STATE_DIR=var"}, shim, "root")

	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, _ := os.ReadFile(filepath.Join(dir, "var", "events.jsonl"))
		mbox, _ := os.ReadFile(filepath.Join(dir, "var", "mail", "root"))
		if strings.Contains(string(evs), "embedded via swaks") && strings.Contains(string(evs), "embedded via shim") &&
			strings.Contains(string(mbox), "Subject: embedded via swaks") && strings.Contains(string(mbox), "Subject: embedded via shim") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events.jsonl:\n%s\nmbox:\n%s\nlog:\n%s", evs, mbox, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startBackground starts cmd with its output collected, and stops it
// (SIGTERM, then SIGKILL after 15 s, which fails the test) when the test
// ends. done receives its exit.
func startBackground(t *testing.T, cmd *exec.Cmd) (*testkit.Buffer, chan error) {
	t.Helper()
	logs := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { err := cmd.Wait(); close(exited); done <- err }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not stop on SIGTERM\n%s", cmd.Path, logs.String())
		}
	})
	return logs, done
}

func waitPort(t *testing.T, addr string, done chan error, logs *testkit.Buffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("herald exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 20 s\n%s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
