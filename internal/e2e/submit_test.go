package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/spool"
	"herald/internal/submit"
)

// waitSocket waits until the daemon serves its submission socket (it binds
// it after the SMTP listener that start waits for).
func (d *daemon) waitSocket() {
	d.t.Helper()
	path := submit.SocketPath(d.stateDir)
	waitFor(d.t, "the submission socket", 10*time.Second, func() bool {
		c, err := net.Dial("unix", path)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stuckConfig routes every event to the file and to a webhook that is
// never there (with its private section), so each mail keeps a pending
// delivery that mailq lists.
const stuckConfig = `file: events
	path %[1]s/events.jsonl

webhook: stuck
	url http://127.0.0.1:1/never
	method post

matcher: default-matcher
	target events
	target stuck
`

// The real shim hands its mail to the real daemon over the socket: the
// event and mailq carry the uid the kernel reported, root's and nobody's.
func TestShimThroughSocket(t *testing.T) {
	setpriv := needTool(t, "setpriv")
	if os.Geteuid() != 0 {
		t.Fatal("this test switches to the user nobody and must run as root (make test does)")
	}
	d := newDaemon(t, stuckConfig)
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), "webhook: stuck\n", 0o600)
	d.start()
	d.waitSocket()

	out := d.run("Subject: root over the socket\n\nx\n", d.shim, "-v", "-i", "root")
	if !strings.Contains(out, "through the daemon") {
		t.Fatalf("the shim did not use the daemon's socket:\n%s", out)
	}
	ev := d.waitEvent("root over the socket")
	checkFields(t, ev, map[string]string{"origin": "sendmail", "uid": "0", "user": "root"})
	if spoolID := strings.Fields(strings.SplitN(out, "queued as ", 2)[1])[0]; ev.ID == spoolID {
		t.Errorf("event ID %s is the spool ID: it must come from the submission ID", ev.ID)
	}
	if n := len(d.maildrop()); n != 0 {
		t.Errorf("%d maildrop entries: the daemon took the mail, the shim must not write it too", n)
	}

	// nobody: as installed, the state directory may be traversed; the
	// socket's directory is the package's 0710 herald:herald-drop, here
	// opened to others because this shim is not setgid.
	for _, p := range []string{bins.dir, filepath.Dir(d.configDir), filepath.Dir(filepath.Dir(d.configDir)), d.configDir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{d.stateDir, filepath.Join(d.stateDir, submit.DirName)} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	asNobody := func(stdin string, args ...string) (string, int) {
		return d.runCode(stdin, nil, setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...)
	}
	if out, code := asNobody("Subject: nobody over the socket\n\ny\n", d.shim, "-v", "-i", "friend@localhost"); code != 0 || !strings.Contains(out, "through the daemon") {
		t.Fatalf("shim as nobody: exit %d, want 0 through the daemon:\n%s", code, out)
	}
	checkFields(t, d.waitEvent("nobody over the socket"), map[string]string{"origin": "sendmail", "uid": "65534", "user": "nobody"})
	waitFor(t, "both webhook deliveries pending", 20*time.Second, func() bool {
		return strings.Count(d.run("", d.herald, "queue", "list"), ".stuck") == 2
	})
	// mailq shows a user the deliveries of the mail that user's uid
	// submitted: nobody's alone to nobody, both to root.
	out, code := asNobody("", d.shim, "-bp")
	if code != 0 || !strings.Contains(out, "nobody@") || strings.Contains(out, "root@") || !strings.Contains(out, "1 Request") {
		t.Errorf("mailq as nobody: exit %d, want nobody's mail alone:\n%s", code, out)
	}
	if out := d.run("", d.shim, "-bp"); !strings.Contains(out, "nobody@") || !strings.Contains(out, "root@") || !strings.Contains(out, "2 Requests") {
		t.Errorf("mailq as root, want both mails:\n%s", out)
	}
}

// maildrop lists the committed maildrop entries.
func (d *daemon) maildrop() []string {
	d.t.Helper()
	des, err := os.ReadDir(filepath.Join(d.stateDir, "spool", "maildrop"))
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if spool.ValidID(de.Name()) {
			out = append(out, de.Name())
		}
	}
	return out
}

// storeThenDie stores a submission and then fails before the answer, as a
// daemon killed between its spool write and its reply.
type storeThenDie struct{ *spool.Spool }

func (s storeThenDie) Submit(env spool.Envelope, body io.Reader, max int64) (string, error) {
	if _, err := s.Spool.Submit(env, body, max); err != nil {
		return "", err
	}
	panic("killed before the answer")
}

// The answer is lost after the daemon stored the mail: the real shim
// writes it into the maildrop too (exit 0), and the real daemon delivers
// it once.
func TestShimLostAnswerDeliveredOnce(t *testing.T) {
	d := newDaemon(t, fileOnly)
	sp, err := spool.Open(d.stateDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(d.stateDir, submit.DirName), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", submit.SocketPath(d.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	srv := submit.New(storeThenDie{sp}, submit.Options{})
	go func() { _ = srv.Serve(l) }()
	out := d.run("Subject: answer lost\n\nonce\n", d.shim, "-v", "-i", "root")
	if !strings.Contains(out, "no answer from the daemon") || !strings.Contains(out, "through the maildrop") {
		t.Fatalf("the shim did not fall back after the lost answer:\n%s", out)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	es, err := sp.Pending()
	if err != nil || len(es) != 2 {
		t.Fatalf("spool %v %v, want the socket's entry and the maildrop's", es, err)
	}

	d.start()
	waitFor(t, "both entries processed", 20*time.Second, func() bool {
		es, err := sp.Pending()
		return err == nil && len(es) == 0
	})
	d.waitEvent("answer lost")
	d.stop() // the queue has finished what was due
	n := 0
	for _, ev := range d.events() {
		if ev.Title == "answer lost" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the mail was delivered %d times, want once\n%s", n, d.log())
	}
}

// SIGKILL the daemon again and again during a burst of shim submissions:
// every shim that exited 0 has its mail delivered exactly once, whether the
// daemon took it, the maildrop did, or both (an answer lost to the kill).
func TestShimSocketCrashBurst(t *testing.T) {
	d := newDaemon(t, fileOnly)
	d.start()
	d.waitSocket()
	const shims = 6
	perShim := 60
	if testing.Short() {
		perShim = 15
	}
	var (
		mu                          sync.Mutex
		acked                       = map[string]bool{}
		viaDaemon, viaDrop, unknown int
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for c := range shims {
		wg.Go(func() {
			for n := 0; n < perShim && ctx.Err() == nil; n++ {
				subj := fmt.Sprintf("shim-%d-%d", c, n)
				cmd := exec.CommandContext(ctx, d.shim, "-v", "-i", "root")
				cmd.Env = d.env()
				cmd.Stdin = strings.NewReader("Subject: " + subj + "\n\n" + strings.Repeat("z", 900) + "\n")
				out, err := cmd.CombinedOutput()
				if err != nil {
					continue
				}
				mu.Lock()
				acked[subj] = true
				switch s := string(out); {
				case strings.Contains(s, "through the daemon"):
					viaDaemon++
				case strings.Contains(s, "no answer from the daemon"):
					unknown++
				default:
					viaDrop++
				}
				mu.Unlock()
			}
		})
	}
	stopKiller := d.killRepeatedly(t, 100*time.Millisecond, 300*time.Millisecond)
	wg.Wait()
	kills := stopKiller()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want < shims*perShim/2 || viaDaemon == 0 {
		t.Fatalf("only %d of %d shims succeeded (%d through the daemon): the burst did not get through\n%s", want, shims*perShim, viaDaemon, tail(d.log(), 4000))
	}
	waitFor(t, "every acknowledged mail", 2*time.Minute, func() bool {
		seen := map[string]bool{}
		for _, ev := range d.events() {
			seen[ev.Title] = true
		}
		for s := range acked {
			if !seen[s] {
				return false
			}
		}
		return true
	})
	// Both entries of a lost answer are processed before the spool is empty.
	waitFor(t, "the spool to empty", time.Minute, func() bool {
		for _, sub := range []string{"maildrop", "incoming"} {
			des, err := os.ReadDir(filepath.Join(d.stateDir, "spool", sub))
			if err != nil {
				return false
			}
			for _, de := range des {
				if spool.ValidID(de.Name()) {
					return false
				}
			}
		}
		return true
	})
	d.stop()
	d.titlesOnce(t)
	t.Logf("%d shims exited 0 (%d through the daemon, %d through the maildrop, %d after a lost answer), %d SIGKILLs",
		want, viaDaemon, viaDrop, unknown, kills)
}
