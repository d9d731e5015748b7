package shim

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"herald/internal/spool"
	"herald/internal/submit"
	"herald/internal/sysexits"
)

// socketAt creates STATE/submit and returns the socket's path there.
func socketAt(t *testing.T, state string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(state, submit.DirName), 0o700); err != nil {
		t.Fatal(err)
	}
	return submit.SocketPath(state)
}

// fakeDaemon serves the socket with act, which gets each request after
// its body was read in full; it returns the requests it got.
func fakeDaemon(t *testing.T, state string, act func(c net.Conn)) <-chan submit.Request {
	t.Helper()
	l, err := net.Listen("unix", socketAt(t, state))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan submit.Request, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			req, n, err := submit.ReadRequest(br, 0)
			if err == nil {
				_, err = io.CopyN(io.Discard, br, n)
			}
			if err != nil {
				t.Errorf("fake daemon: %v", err)
				c.Close()
				continue
			}
			got <- req
			act(c)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return got
}

func answer(status byte, text string) func(net.Conn) {
	return func(c net.Conn) { _, _ = c.Write(submit.EncodeReply(status, text)) }
}

// The shim falls back to the maildrop whenever the daemon did not store
// the message, and marks the maildrop entry with the submission ID when
// the daemon may have it; a final refusal ends it with 65.
func TestSocketFallbacks(t *testing.T) {
	for _, tc := range []struct {
		name string
		// daemon sets up the socket; nil: none at all.
		daemon       func(t *testing.T, state string) <-chan submit.Request
		wantCode     int
		wantMaildrop bool
		wantMarked   bool // the maildrop entry carries the submission ID
	}{
		{name: "no daemon", wantCode: 0, wantMaildrop: true},
		{name: "stale socket file", daemon: func(t *testing.T, state string) <-chan submit.Request {
			l, err := net.Listen("unix", socketAt(t, state))
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close() // a killed daemon's socket: connecting is refused
			return nil
		}, wantCode: 0, wantMaildrop: true},
		{name: "temporary refusal", daemon: func(t *testing.T, state string) <-chan submit.Request {
			return fakeDaemon(t, state, answer(submit.StatusTempFail, "spool: reserve: free space below the spool's reserve"))
		}, wantCode: 0, wantMaildrop: true, wantMarked: true},
		{name: "request not understood", daemon: func(t *testing.T, state string) <-chan submit.Request {
			return fakeDaemon(t, state, answer(submit.StatusProtocol, "version 1, want 2"))
		}, wantCode: 0, wantMaildrop: true, wantMarked: true},
		{name: "no answer", daemon: func(t *testing.T, state string) <-chan submit.Request {
			return fakeDaemon(t, state, func(net.Conn) {})
		}, wantCode: 0, wantMaildrop: true, wantMarked: true},
		{name: "answer too late", daemon: func(t *testing.T, state string) <-chan submit.Request {
			old := answerTimeout
			answerTimeout = 200 * time.Millisecond
			t.Cleanup(func() { answerTimeout = old })
			return fakeDaemon(t, state, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 1)) // until the shim gives up
			})
		}, wantCode: 0, wantMaildrop: true, wantMarked: true},
		{name: "final refusal", daemon: func(t *testing.T, state string) <-chan submit.Request {
			return fakeDaemon(t, state, answer(submit.StatusDataErr, "message too large: the limit is 10 bytes"))
		}, wantCode: sysexits.DataErr},
		{name: "stored", daemon: func(t *testing.T, state string) <-chan submit.Request {
			return fakeDaemon(t, state, answer(submit.StatusOK, "18ed6006735d0154-903e38b6"))
		}, wantCode: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, state := testSpool(t)
			var got <-chan submit.Request
			if tc.daemon != nil {
				got = tc.daemon(t, state)
			}
			r := run(t, []string{"sendmail", "-v", "root"}, strings.NewReader("Subject: fallback\n\nbody\n"))
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.wantCode, r.stderr)
			}
			var sent submit.Request
			if got != nil {
				select {
				case sent = <-got:
				default:
					t.Fatal("the shim did not send its message to the daemon's socket")
				}
				if sent.Source != "sendmail" || sent.Kind != spool.KindMail || strings.Join(sent.Recipients, ",") != "root" {
					t.Errorf("request %+v", sent)
				}
			}
			es, err := s.Pending()
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantMaildrop {
				if len(es) != 0 {
					t.Fatalf("%d entries in the maildrop, want none: the daemon has the message", len(es))
				}
				if tc.wantCode == 0 && !strings.Contains(r.stderr, "through the daemon") {
					t.Errorf("-v says %q", r.stderr)
				}
				return
			}
			e, body := onlyEntry(t, s)
			if !e.FromMaildrop() || !strings.Contains(body, "Subject: fallback") || !strings.Contains(r.stderr, "through the maildrop") {
				t.Fatalf("entry %+v body %q stderr %q", e, body, r.stderr)
			}
			switch {
			case tc.wantMarked && (e.Env.Submission == "" || e.Env.Submission != sent.Submission):
				t.Errorf("maildrop entry's submission %q, want the one sent (%q)", e.Env.Submission, sent.Submission)
			case !tc.wantMarked && e.Env.Submission != "":
				t.Errorf("maildrop entry marked %q although nothing reached a daemon", e.Env.Submission)
			}
		})
	}
}

// A message larger than the shim holds in memory goes to the maildrop at
// once.
func TestLargeMessageSkipsSocket(t *testing.T) {
	s, state := testSpool(t)
	got := fakeDaemon(t, state, answer(submit.StatusOK, "x"))
	body := "Subject: big\n\n" + strings.Repeat(strings.Repeat("y", 99)+"\n", socketMax/100+1)
	if r := run(t, []string{"sendmail", "root"}, strings.NewReader(body)); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	select {
	case req := <-got:
		t.Fatalf("a message over %d bytes went over the socket: %+v", socketMax, req)
	default:
	}
	if _, msg := onlyEntry(t, s); !strings.HasSuffix(msg, body[len("Subject: big\n\n"):]) {
		t.Fatalf("maildrop message of %d bytes, want the whole body", len(msg))
	}
}

// storeThenFail stores a submission and then panics, as a daemon killed
// between its spool write and its answer: the message is stored, the
// answer lost.
type storeThenFail struct{ *spool.Spool }

func (s storeThenFail) Submit(env spool.Envelope, body io.Reader, max int64) (string, error) {
	if _, err := s.Spool.Submit(env, body, max); err != nil {
		return "", err
	}
	panic("killed before the answer")
}

// A lost answer: the daemon has the message, the shim writes it into the
// maildrop too, and both entries make one event.
func TestLostAnswerMakesOneEvent(t *testing.T) {
	s, state := testSpool(t)
	l, err := net.Listen("unix", socketAt(t, state))
	if err != nil {
		t.Fatal(err)
	}
	srv := submit.New(storeThenFail{s}, submit.Options{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if r := run(t, []string{"sendmail", "root"}, strings.NewReader("Subject: once\n\nbody\n")); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 2 {
		t.Fatalf("pending %v %v, want the daemon's entry and the maildrop's", es, err)
	}
	a, b := es[0], es[1]
	if a.FromMaildrop() == b.FromMaildrop() {
		t.Fatalf("entries from maildrop %v and %v, want one of each", a.FromMaildrop(), b.FromMaildrop())
	}
	if a.EventID() != b.EventID() || a.EventID() == a.ID {
		t.Fatalf("event IDs %s and %s: the two entries must make one event", a.EventID(), b.EventID())
	}
	ma, _ := s.ReadAll(a)
	mb, _ := s.ReadAll(b)
	if string(ma) != string(mb) {
		t.Fatalf("the two entries hold different messages:\n%s\n---\n%s", ma, mb)
	}
}

// BenchmarkShimSocket measures whole sendmail invocations of a 2 KB cron
// mail through a daemon's submission socket (served in this process with
// the daemon's server and a real spool: no pick-up runs beside it),
// through the maildrop, and /bin/true, interleaved so all three see the
// same machine load. Reports the medians.
func BenchmarkShimSocket(b *testing.B) {
	bin := buildShim(b, b.TempDir(), "sendmail", "")
	sockState, dropState := b.TempDir(), b.TempDir()
	sp, err := spool.Open(sockState, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := spool.Open(dropState, nil); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sockState, submit.DirName), 0o700); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("unix", submit.SocketPath(sockState))
	if err != nil {
		b.Fatal(err)
	}
	srv := submit.New(sp, submit.Options{})
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()
	var msg strings.Builder
	msg.WriteString("From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@vm> backup\n\n")
	for msg.Len() < 2048 {
		msg.WriteString("backup: copied 1234 files, 56 MB, no errors reported by the tool\n")
	}
	body := msg.String()
	runs := max(b.N, 200)
	timeOne := func(state, name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env = shimEnv(state)
		cmd.Stdin = strings.NewReader(body)
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return time.Since(start)
	}
	var sock, drop, truth []time.Duration
	b.ResetTimer()
	for range runs {
		sock = append(sock, timeOne(sockState, bin, "-i", "root"))
		drop = append(drop, timeOne(dropState, bin, "-i", "root"))
		truth = append(truth, timeOne("", "/bin/true"))
	}
	b.StopTimer()
	if es, err := sp.Pending(); err != nil || len(es) != runs {
		b.Fatalf("%d entries from the socket, want %d (%v): some went to the maildrop", len(es), runs, err)
	}
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2]) / float64(time.Millisecond)
	}
	ms, md, mt := median(sock), median(drop), median(truth)
	b.ReportMetric(ms, "ms/socket-median")
	b.ReportMetric(md, "ms/maildrop-median")
	b.ReportMetric(mt, "ms/true-median")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d runs each: socket %.2f ms, maildrop %.2f ms (socket/maildrop %.2f), /bin/true %.2f ms", runs, ms, md, ms/md, mt)
}
