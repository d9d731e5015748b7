package submit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/spool"
	"herald/internal/testkit"
)

// openSpool opens a real spool in a fresh directory.
func openSpool(t *testing.T) *spool.Spool {
	t.Helper()
	sp, err := spool.OpenDir(filepath.Join(t.TempDir(), "spool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// serve starts a server for sp on a socket in a fresh directory and
// returns the socket's path; shutdown waits for every submission served.
func serve(t *testing.T, sp Spool, opt Options) (path string, shutdown func()) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, SocketName)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(sp, opt)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	var done bool
	shutdown = func() {
		if done {
			return
		}
		done = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want net.ErrClosed", err)
		}
	}
	t.Cleanup(shutdown)
	return path, shutdown
}

// spoolFiles lists every file in the spool's entry directories: entries
// and partial files alike.
func spoolFiles(t *testing.T, sp *spool.Spool) []string {
	t.Helper()
	var out []string
	for _, d := range []string{"incoming", "maildrop"} {
		des, err := os.ReadDir(filepath.Join(sp.Dir(), d))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			out = append(out, d+"/"+de.Name())
		}
	}
	return out
}

func TestServerStores(t *testing.T) {
	sp := openSpool(t)
	path, _ := serve(t, sp, Options{})
	req := testRequest()
	body := "Subject: disk full\n\n/ is at 99%\n"
	id, err := Send(path, req, []byte(body), time.Second, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The answer came after Submit: the entry is there now.
	es, err := sp.Pending()
	if err != nil || len(es) != 1 {
		t.Fatalf("pending %v %v, want one entry", es, err)
	}
	e := es[0]
	if e.ID != id {
		t.Errorf("entry %s, answer %s", e.ID, id)
	}
	if e.FromMaildrop() || e.Env.Source != "sendmail" || e.Env.Kind != spool.KindMail || e.Env.From != req.From ||
		strings.Join(e.Env.Recipients, ",") != "root,ops@example.org" || e.Env.Submission != req.Submission {
		t.Errorf("envelope %+v", e.Env)
	}
	if uid, ok := e.Submitter(); !ok || uid != os.Geteuid() {
		t.Errorf("submitter %d %v, want this process's uid %d (SO_PEERCRED)", uid, ok, os.Geteuid())
	}
	if got, err := sp.ReadAll(e); err != nil || string(got) != body {
		t.Errorf("message %q %v", got, err)
	}
	if e.EventID() == e.ID {
		t.Errorf("event ID %s not derived from the submission", e.EventID())
	}
}

// A client that disappears mid-message, or stalls past the read timeout,
// loses nothing it was told was stored and leaves nothing behind.
func TestServerClientGone(t *testing.T) {
	full := request(t, testRequest(), "Subject: x\n\n"+strings.Repeat("y", 200<<10))
	for _, tc := range []struct {
		name  string
		cut   int
		stall bool
	}{
		{"in the header", 20, false},
		{"in the body", len(full) / 2, false},
		{"one byte short", len(full) - 1, false},
		{"stalls in the body", len(full) / 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := openSpool(t)
			path, shutdown := serve(t, sp, Options{ReadTimeout: 300 * time.Millisecond})
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(full[:tc.cut]); err != nil {
				t.Fatal(err)
			}
			if tc.stall {
				// The server gives up: the connection ends without an answer.
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(c)
				if err != nil || len(b) != 0 {
					t.Fatalf("stalled client got %q, %v; want the connection closed without an answer", b, err)
				}
			}
			c.Close()
			shutdown() // waits for the server to finish with the connection
			if fs := spoolFiles(t, sp); len(fs) != 0 {
				t.Fatalf("left in the spool: %v", fs)
			}
		})
	}
}

// refusingSpool is a real spool whose per-uid limit or writes fail.
type refusingSpool struct {
	*spool.Spool
	userErr, submitErr error
}

func (r refusingSpool) UserOK(uid int) error {
	if r.userErr != nil {
		return r.userErr
	}
	return r.Spool.UserOK(uid)
}

func (r refusingSpool) Submit(env spool.Envelope, body io.Reader, max int64) (string, error) {
	if r.submitErr != nil {
		_, _ = io.Copy(io.Discard, body)
		return "", r.submitErr
	}
	return r.Spool.Submit(env, body, max)
}

// Every refusal is an answer the shim can act on: 65 is final, 75 and 76
// send it to the maildrop; nothing is stored.
func TestServerRefusals(t *testing.T) {
	enospc := &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		name      string
		sp        func(*spool.Spool) Spool
		max       int64
		raw       []byte // sent instead of a request
		body      string
		status    byte
		wantText  string
		wantFinal bool
	}{
		{name: "too large", max: 10, body: "Subject: eleven", status: StatusDataErr, wantText: "limit is 10 bytes", wantFinal: true},
		{name: "per-uid limit", sp: func(s *spool.Spool) Spool {
			return refusingSpool{Spool: s, userErr: fmt.Errorf("spool: %w", spool.ErrUserLimit)}
		}, body: "x", status: StatusTempFail, wantText: "spool-max-per-uid"},
		{name: "disk full", sp: func(s *spool.Spool) Spool { return refusingSpool{Spool: s, submitErr: enospc} },
			body: "x", status: StatusTempFail, wantText: "no space left"},
		{name: "garbage", raw: []byte("EHLO localhost\r\n"), status: StatusProtocol, wantText: "version 69, want 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real := openSpool(t)
			var sp Spool = real
			if tc.sp != nil {
				sp = tc.sp(real)
			}
			path, shutdown := serve(t, sp, Options{MaxSize: tc.max})
			var re *RefusedError
			if tc.raw != nil {
				c, err := net.Dial("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(tc.raw); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				st, text, err := ReadReply(c)
				c.Close()
				if err != nil {
					t.Fatal(err)
				}
				re = &RefusedError{Status: st, Text: text}
			} else {
				_, err := Send(path, testRequest(), []byte(tc.body), time.Second, 10*time.Second)
				if !errors.As(err, &re) {
					t.Fatalf("got %v, want a refusal", err)
				}
			}
			if re.Status != tc.status || !strings.Contains(re.Text, tc.wantText) || re.Final() != tc.wantFinal {
				t.Fatalf("refusal (%d, %q, final %v), want (%d, ...%q..., final %v)", re.Status, re.Text, re.Final(), tc.status, tc.wantText, tc.wantFinal)
			}
			shutdown()
			if fs := spoolFiles(t, real); len(fs) != 0 {
				t.Fatalf("left in the spool: %v", fs)
			}
		})
	}
}

// With one slot, a second client waits until the first is done, and is
// then served.
func TestServerConcurrencyBound(t *testing.T) {
	sp := openSpool(t)
	path, _ := serve(t, sp, Options{MaxConns: 1})
	first, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := EncodeRequest(testRequest(), 1)
	if _, err := first.Write(head); err != nil { // all but the body's byte
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		_, err := Send(path, testRequest(), []byte("2"), time.Second, 20*time.Second)
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("the second client was served while the only slot was taken: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := first.Write([]byte("1")); err != nil {
		t.Fatal(err)
	}
	_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if st, _, err := ReadReply(first); err != nil || st != StatusOK {
		t.Fatalf("first: %d %v", st, err)
	}
	first.Close()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second client was not served within 10 s of the slot freeing")
	}
	if es, _ := sp.Pending(); len(es) != 2 {
		t.Fatalf("%d entries, want 2", len(es))
	}
}

// helperEnv makes the test binary a submission client (TestHelperClient).
const helperEnv = "HERALD_SUBMIT_TEST_CLIENT"

// TestHelperClient is not a test: run by TestServerUIDForgery as another
// user, it submits a request that claims uid 0 wherever a request can say
// anything, and prints the answer.
func TestHelperClient(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		return
	}
	req := testRequest()
	// A JSON injection into the envelope line, and a forged field.
	req.From = `root","peer-uid":0,"x":"`
	req.Recipients = []string{`root","peer-uid":0`}
	id, err := Send(path, req, []byte("X-Uid: 0\nSubject: forged\n\nuid=0\n"), time.Second, 10*time.Second)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(id)
	os.Exit(0)
}

// uid-forgery: whatever a client puts in its request, the entry records
// the uid the kernel reports for its socket.
func TestServerUIDForgery(t *testing.T) {
	testkit.Root(t, "it runs a client as nobody")
	const nobody = 65534
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A directory nobody can reach, holding the test binary and the socket.
	dir, err := os.MkdirTemp("", "herald-submit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	sp := openSpool(t)
	path := filepath.Join(dir, SocketName)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	srv := New(sp, Options{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	cmd := exec.Command(bin, "-test.run=^TestHelperClient$")
	cmd.Env = []string{helperEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	id := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	es, err := sp.Pending()
	if err != nil || len(es) != 1 || es[0].ID != id {
		t.Fatalf("pending %+v %v, want the entry %s", es, err, id)
	}
	e := es[0]
	if uid, ok := e.Submitter(); !ok || uid != nobody {
		t.Fatalf("submitter %d %v, want nobody (%d)", uid, ok, nobody)
	}
	if e.Env.From != `root","peer-uid":0,"x":"` {
		t.Errorf("sender %q: the request's bytes must be kept as they are, as a string", e.Env.From)
	}
	if e.Env.PeerUID == nil || *e.Env.PeerUID != nobody {
		t.Errorf("peer-uid %v", e.Env.PeerUID)
	}
	t.Logf("entry %s recorded uid %s", id, strconv.Itoa(nobody))
}
