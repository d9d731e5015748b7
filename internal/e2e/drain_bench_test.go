package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/spool"
)

// drainBacklog is the number of mails spooled while the daemon is down.
const drainBacklog = 5000

// fileAndMbox routes every event to two local targets, the events file and
// an mbox (naming the matcher default-matcher keeps the built-in
// mail-to-root out).
const fileAndMbox = `file: events
	path %[1]s/events.jsonl

mbox: mailbox
	path %[1]s/mail/root

matcher: default-matcher
	target events
	target mailbox
`

// BenchmarkBacklogDrain spools drainBacklog 1 KB mails into the maildrop
// while the daemon is down (as the shim does), starts it, and times the
// start until every mail is in both local targets (the events file and the
// mbox): the sustained pick-up and delivery rate, in events/s.
func BenchmarkBacklogDrain(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		d := newDaemon(b, fileAndMbox)
		if _, err := spool.Open(d.stateDir, nil); err != nil { // creates the spool as the daemon would
			b.Fatal(err)
		}
		drop, err := spool.OpenDrop(d.stateDir)
		if err != nil {
			b.Fatal(err)
		}
		body := "From: cron@testhost\nTo: root\nSubject: %s\n\n" + strings.Repeat("backup finished, 42 files\n", 36)
		for i := range drainBacklog {
			env := spool.Envelope{Kind: spool.KindMail, Source: "sendmail", From: "cron@testhost", Recipients: []string{"root"}}
			if _, err := drop.Submit(env, strings.NewReader(fmt.Sprintf(body, fmt.Sprint("drain-", i))), 0); err != nil {
				b.Fatal(err)
			}
		}
		events, mbox := filepath.Join(d.stateDir, "events.jsonl"), filepath.Join(d.stateDir, "mail", "root")
		b.StartTimer()
		start := time.Now()
		d.start()
		deadline := start.Add(5 * time.Minute)
		for {
			ne, nm := countLines(b, events, "{"), countLines(b, mbox, "From ")
			if ne >= drainBacklog && nm >= drainBacklog {
				if ne != drainBacklog || nm != drainBacklog {
					b.Fatalf("%d events and %d mails for %d spooled", ne, nm, drainBacklog)
				}
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("after 5 min only %d events and %d mails of %d\n%s", ne, nm, drainBacklog, tail(d.log(), 4000))
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		d.stop()
		b.ReportMetric(float64(drainBacklog)/elapsed.Seconds(), "events/s")
		b.ReportMetric(elapsed.Seconds(), "drain-s")
		b.StartTimer()
	}
}

// countLines counts the lines of path that start with prefix (0 when the
// file does not exist yet).
func countLines(b *testing.B, path, prefix string) int {
	b.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	p := []byte(prefix)
	for sc.Scan() {
		if bytes.HasPrefix(sc.Bytes(), p) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}
