package smtpd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"herald/internal/safeio"
	"herald/internal/spool"
)

// benchSessions is the number of concurrent clients, as in the lab's
// `smtp-source -s 20` baseline (docs/clients.md §4: Postfix 979 msg/s).
const benchSessions = 20

// durableSpool returns the daemon's real spool on a fresh state directory,
// with its journal as the daemon opens it: every message is committed (one
// fdatasync shared by the sessions waiting) before Submit returns.
func durableSpool(b *testing.B) Submitter {
	b.Helper()
	sp := directSpool(b).(*spool.Spool)
	if err := sp.OpenJournal(safeio.JournalOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := sp.Close(); err != nil {
			b.Error(err)
		}
	})
	return sp
}

// directSpool is the spool without a journal: every message is written
// and fsynced (file and directory) on its own before Submit returns.
func directSpool(b *testing.B) Submitter {
	b.Helper()
	sp, err := spool.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return sp
}

type discardSub struct{ n atomic.Int64 }

func (d *discardSub) Submit(_ spool.Envelope, body io.Reader, _ int64) (string, error) {
	if _, err := io.Copy(io.Discard, body); err != nil {
		return "", err
	}
	return strconv.FormatInt(d.n.Add(1), 10), nil
}

func benchServer(b *testing.B, sub Submitter) string {
	b.Helper()
	lns, err := ListenLoopback([]string{"127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	s := New(sub, Options{Hostname: "bench.test"})
	served := make(chan error, 1)
	go func() { served <- s.Serve(lns[0]) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			b.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	return lns[0].Addr().String()
}

// benchMessage is a 1 KB message, like smtp-source -l 1024.
var benchMessage = func() string {
	var sb strings.Builder
	sb.WriteString("From: root@vm\r\nTo: root@example.org\r\nSubject: bench\r\n\r\n")
	for sb.Len() < 1024-4 {
		sb.WriteString("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n")
	}
	return sb.String()
}()

// oneSession sends one message in its own session, waiting for every reply
// as smtp-source does.
func oneSession(addr string) error {
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	r := bufio.NewReader(nc)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("got %q, want %s", line, code)
			}
			if line[3] == ' ' {
				return nil
			}
		}
	}
	steps := []struct{ send, want string }{
		{"", "220"}, {"EHLO bench\r\n", "250"}, {"MAIL FROM:<root@vm>\r\n", "250"},
		{"RCPT TO:<root@example.org>\r\n", "250"}, {"DATA\r\n", "354"},
		{benchMessage + ".\r\n", "250"}, {"QUIT\r\n", "221"},
	}
	for _, s := range steps {
		if s.send != "" {
			if _, err := io.WriteString(nc, s.send); err != nil {
				return err
			}
		}
		if err := expect(s.want); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkIngest measures SMTP ingest throughput: benchSessions concurrent
// clients over loopback, one 1 KB message per session. "durable" goes
// through the real spool and its journal (the figure to compare with
// Postfix's 979 msg/s); "direct" through the spool without the journal
// (fsync of file and directory per message); "discard" is the protocol
// ceiling (compare smtp-sink's 8997 msg/s).
func BenchmarkIngest(b *testing.B) {
	for _, bc := range []struct {
		name string
		sub  func(*testing.B) Submitter
	}{
		{"durable", durableSpool},
		{"direct", directSpool},
		{"discard", func(*testing.B) Submitter { return &discardSub{} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr := benchServer(b, bc.sub(b))
			var next atomic.Int64
			var wg sync.WaitGroup
			errc := make(chan error, benchSessions)
			b.ResetTimer()
			for g := 0; g < benchSessions; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := oneSession(addr); err != nil {
							errc <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errc)
			for err := range errc {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkIngestSmtpSource runs Postfix's own load generator against the
// listener with the lab's exact command (docs/clients.md §4), so the figure is
// directly comparable with the Postfix baseline. b.N is the message count.
func BenchmarkIngestSmtpSource(b *testing.B) {
	const bin = "/opt/herald-test/postfix/usr/sbin/smtp-source"
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("%s: %v: run scripts/install-test-deps.sh as root", bin, err)
	}
	addr := benchServer(b, durableSpool(b))
	n := max(b.N, benchSessions)
	cmd := exec.Command(bin, "-s", strconv.Itoa(benchSessions), "-m", strconv.Itoa(n), "-l", "1024",
		"-f", "root@vm", "-t", "root@example.org", addr)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH=/opt/herald-test/postfix/usr/lib/postfix")
	b.ResetTimer()
	out, err := cmd.CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msg/s")
}
