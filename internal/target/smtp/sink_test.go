package smtp

import (
	"bytes"
	"errors"
	"mime"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"herald/internal/target"
)

// Postfix's smtp-sink, installed by scripts/install-test-deps.sh: a real
// SMTP server implementation to check the client against, not just go-smtp
// talking to itself.
const (
	sinkBin = "/opt/herald-test/postfix/usr/sbin/smtp-sink"
	sinkLib = "/opt/herald-test/postfix/usr/lib/postfix"
)

// startSink runs smtp-sink with extra options on a free loopback port,
// dumping each message into a file of the returned directory.
func startSink(t *testing.T, opts ...string) (port int, dumpDir string) {
	t.Helper()
	if _, err := os.Stat(sinkBin); err != nil {
		t.Fatalf("Postfix smtp-sink not found (%v): run scripts/install-test-deps.sh as root", err)
	}
	dumpDir = t.TempDir()
	args := slicesConcat(opts, []string{"-d", dumpDir + "/%M."})
	if os.Geteuid() == 0 {
		// smtp-sink refuses to run as root without -u and then writes its
		// dumps as that user.
		args = append(args, "-u", "nobody")
		for _, d := range []string{filepath.Dir(dumpDir), dumpDir} {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The port may be taken between our probe and smtp-sink's bind; try a
	// few times.
	for attempt := 0; attempt < 3; attempt++ {
		port = freePort(t)
		cmd := exec.Command(sinkBin, append(args, "127.0.0.1:"+strconv.Itoa(port), "10")...)
		cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+sinkLib)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start smtp-sink: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill() // by PID: only the process we started
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				t.Errorf("smtp-sink (pid %d) did not exit after kill", cmd.Process.Pid)
			}
		})
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				_ = c.Close()
				return port, dumpDir
			}
			select {
			case err := <-exited:
				t.Logf("smtp-sink exited (%v): %s; retrying on another port", err, stderr.String())
			case <-time.After(20 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
				t.Fatalf("smtp-sink did not listen on port %d within 5s: %s", port, stderr.String())
			}
			break
		}
	}
	t.Fatal("smtp-sink could not start on a free port in 3 attempts")
	return 0, ""
}

func slicesConcat(a, b []string) []string { return append(append([]string(nil), a...), b...) }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// waitDump waits for the n-th complete dump file: smtp-sink may still be
// writing when the client has its reply, so wait for the message's end.
func waitDump(t *testing.T, dir, end string) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		if len(files) > 1 {
			t.Fatalf("smtp-sink dumped %d messages, want 1: %v", len(files), files)
		}
		if len(files) == 1 {
			b, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(end)) {
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete smtp-sink dump containing %q in %s within 5s (files %v)", end, dir, files)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sinkTarget(t *testing.T, port int, mode string) *Target {
	t.Helper()
	tg, err := New(Options{Server: "127.0.0.1", Port: port, Mode: mode, From: "pve1@example.org",
		Author: "Proxmox VE", To: []string{"ops@example.org", "root"}, Hostname: "pve1.example.org",
		Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestSmtpSinkDelivers(t *testing.T) {
	port, dir := startSink(t)
	tg := sinkTarget(t, port, ModeInsecure)
	ev := testEvent()
	ev.Title = "Größe überschritten"
	if err := deliver(t, tg, ev); err != nil {
		t.Fatalf("Deliver to smtp-sink: %v", err)
	}
	dump := waitDump(t, dir, "--\n\n")
	// smtp-sink's own records, then the message.
	for _, want := range []string{
		"X-Helo-Args: pve1.example.org\n",
		"X-Mail-Args: <pve1@example.org> BODY=8BITMIME\n",
		"X-Rcpt-Args: <ops@example.org>\n",
		"X-Rcpt-Args: <root@pve1.example.org>\n",
	} {
		if !bytes.Contains(dump, []byte(want)) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	i := bytes.Index(dump, []byte("\nFrom: "))
	if i < 0 {
		t.Fatalf("no From header in dump:\n%s", dump)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(dump[i+1:]))
	if err != nil {
		t.Fatalf("dumped message does not parse: %v", err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "Größe überschritten" {
		t.Errorf("Subject = %q (%v)", subject, err)
	}
}

func TestSmtpSinkRejects(t *testing.T) {
	tests := []struct {
		name     string
		opts     []string
		mode     string
		wantTemp bool
		wantErr  string
	}{
		{"rcpt-soft", []string{"-r", "RCPT"}, ModeInsecure, true, "450 4.3.0"},
		{"rcpt-hard", []string{"-f", "RCPT"}, ModeInsecure, false, "500 5.3.0"},
		{"data-hard", []string{"-f", "."}, ModeInsecure, false, "end of DATA: server replied 500 5.3.0"},
		{"mail-421-disconnect", []string{"-Q", "MAIL"}, ModeInsecure, true, "421"},
		{"rcpt-disconnect", []string{"-q", "RCPT"}, ModeInsecure, true, "RCPT TO"},
		{"no-starttls", nil, ModeSTARTTLS, false, "does not offer STARTTLS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port, dir := startSink(t, tc.opts...)
			err := deliver(t, sinkTarget(t, port, tc.mode), testEvent())
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			var te *target.Error
			if !errors.As(err, &te) || te.Temp != tc.wantTemp {
				t.Errorf("got %#v, want temporary=%v", err, tc.wantTemp)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q lacks %q", err, tc.wantErr)
			}
			// smtp-sink opens a dump at MAIL; no message text may be in one
			// unless the rejection came after the data.
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte("\nSubject: ")) != (tc.name == "data-hard") {
					t.Errorf("dump %s:\n%s", f, b)
				}
			}
		})
	}
}
