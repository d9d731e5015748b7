package systemd

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"herald/internal/testkit"
)

func socketActivateTool(t *testing.T) string {
	t.Helper()
	return testkit.Tool(t, "systemd-socket-activate", "systemd")
}

// freePort returns a loopback TCP or UDP port that was free a moment ago;
// systemd-socket-activate needs a number, not port 0.
func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// activatedRun is one run of systemd-socket-activate around the helper.
type activatedRun struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr *testkit.Buffer
	exited chan error
}

// startActivated runs systemd-socket-activate with args (listen options)
// and the helper, and waits until the tool says it listens on every address
// in addrs. It returns nil (after the tool exited) if one of the ports was
// taken in the meantime, so the caller can retry with other ports.
func startActivated(t *testing.T, args []string, addrs []string) *activatedRun {
	t.Helper()
	tool := socketActivateTool(t)
	helper := buildHelper(t, "activated")
	cmd := exec.Command(tool, append(args, helper)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &activatedRun{cmd: cmd, stdout: bufio.NewReader(stdout), stderr: &testkit.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", tool, err)
	}
	go func() { a.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// Kill only the process this test started, if still running.
		select {
		case <-a.exited:
		default:
			_ = cmd.Process.Kill()
			<-a.exited
		}
	})
	deadline := time.After(10 * time.Second)
	for {
		listening := true
		for _, addr := range addrs {
			if !strings.Contains(a.stderr.String(), "Listening on "+addr+" ") {
				listening = false
			}
		}
		if listening {
			return a
		}
		select {
		case err := <-a.exited:
			a.exited <- err
			if strings.Contains(a.stderr.String(), "in use") {
				return nil
			}
			t.Fatalf("systemd-socket-activate exited (%v) before listening on %v:\n%s", err, addrs, a.stderr.String())
		case <-deadline:
			t.Fatalf("systemd-socket-activate did not listen on %v within 10s:\n%s", addrs, a.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type helperReport struct {
	Names   map[string][]string `json:"names"`
	EnvLeft []string            `json:"env_left"`
	Error   string              `json:"error"`
}

// report reads the helper's JSON line, with a deadline.
func (a *activatedRun) report(t *testing.T) helperReport {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := a.stdout.ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading helper report: %v (got %q); stderr:\n%s", r.err, r.line, a.stderr.String())
		}
		var rep helperReport
		if err := json.Unmarshal([]byte(r.line), &rep); err != nil {
			t.Fatalf("helper report %q: %v", r.line, err)
		}
		return rep
	case <-time.After(10 * time.Second):
		t.Fatalf("no report from the activated helper within 10s; stderr:\n%s", a.stderr.String())
	}
	panic("unreachable")
}

func (a *activatedRun) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-a.exited:
		a.exited <- err
		if err != nil {
			t.Fatalf("activated helper failed: %v; stderr:\n%s", err, a.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("activated helper still running after 10s; stderr:\n%s", a.stderr.String())
	}
}

// TestListenersSocketActivated runs the real systemd-socket-activate with two
// named stream sockets, as herald.socket and herald-http.socket pass them.
func TestListenersSocketActivated(t *testing.T) {
	var a *activatedRun
	var smtpAddr, httpAddr string
	for try := 0; a == nil; try++ {
		if try == 5 {
			t.Fatal("could not find two free loopback ports in 5 tries")
		}
		smtpAddr = "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp"))
		httpAddr = "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp"))
		if smtpAddr == httpAddr {
			continue
		}
		a = startActivated(t, []string{"-l", smtpAddr, "-l", httpAddr, "--fdname=smtp:http"}, []string{smtpAddr, httpAddr})
	}

	// The first connection makes the tool exec the helper with the sockets.
	c, err := net.DialTimeout("tcp", smtpAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", smtpAddr, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	rep := a.report(t)
	want := map[string][]string{"smtp": {smtpAddr}, "http": {httpAddr}}
	if rep.Error != "" || !reflect.DeepEqual(rep.Names, want) {
		t.Fatalf("Listeners() = %v, %q; want %v, no error", rep.Names, rep.Error, want)
	}
	if len(rep.EnvLeft) != 0 {
		t.Errorf("Listeners left %v in the environment; children would inherit them", rep.EnvLeft)
	}
	if _, err := io.WriteString(c, "EHLO test\n"); err != nil {
		t.Fatalf("write to activated helper: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v; stderr:\n%s", err, a.stderr.String())
	}
	if string(got) != "echo: EHLO test\n" {
		t.Fatalf("echo = %q, want %q", got, "echo: EHLO test\n")
	}
	a.wait(t)
}

// TestListenersRejectsDatagramSocket: a unit that passes a datagram socket
// where herald expects a stream listener gets an error, not a silently
// missing listener.
func TestListenersRejectsDatagramSocket(t *testing.T) {
	var a *activatedRun
	var addr string
	for try := 0; a == nil; try++ {
		if try == 5 {
			t.Fatal("could not find a free loopback UDP port in 5 tries")
		}
		addr = "127.0.0.1:" + strconv.Itoa(freePort(t, "udp"))
		a = startActivated(t, []string{"--datagram", "-l", addr, "--fdname=smtp"}, []string{addr})
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("wake up")); err != nil {
		t.Fatal(err)
	}
	rep := a.report(t)
	if !strings.Contains(rep.Error, "passed 1 socket(s) but only 0 are stream listeners") {
		t.Fatalf("Listeners() error = %q, want one about a socket that is not a stream listener", rep.Error)
	}
	if len(rep.Names) != 0 {
		t.Fatalf("Listeners() returned %v along with the error", rep.Names)
	}
	a.wait(t)
}

func TestListenersNotActivated(t *testing.T) {
	tests := []struct {
		name           string
		pid, fds, fdns string
	}{
		{"no environment", "", "", ""},
		// Variables meant for another process (our parent, say) are not
		// ours: descriptor 3 of this process must not be touched.
		{"other pid", strconv.Itoa(os.Getpid() + 1), "1", "smtp"},
		{"no fds", strconv.Itoa(os.Getpid()), "0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LISTEN_PID", tt.pid)
			t.Setenv("LISTEN_FDS", tt.fds)
			t.Setenv("LISTEN_FDNAMES", tt.fdns)
			ls, err := Listeners()
			if err != nil {
				t.Fatalf("Listeners() error = %v", err)
			}
			if ls == nil || len(ls) != 0 {
				t.Fatalf("Listeners() = %#v, want an empty, non-nil map", ls)
			}
			for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
				if _, ok := os.LookupEnv(v); ok {
					t.Errorf("%s still set after Listeners()", v)
				}
			}
		})
	}
}
