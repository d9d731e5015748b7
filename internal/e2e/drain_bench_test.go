package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// drainMails is the backlog BenchmarkBacklogDrain spools while the daemon
// is down (docs/bench.md).
const drainMails = 5000

// drainNotifications routes every event to exactly two local targets: the
// events file and an mbox of its own (the built-in default-matcher would
// add mail-to-root, a third delivery).
const drainNotifications = `file: events
	path %[1]s/events.jsonl

mbox: mailbox
	path %[1]s/backlog.mbox

matcher: default-matcher
	target events
	target mailbox
`

// BenchmarkBacklogDrain measures how fast the real daemon works off a
// backlog: drainMails cron mails are submitted with the sendmail shim
// while the daemon is stopped (they wait in the maildrop), then the daemon
// starts and the clock runs from its exec until every mail is in both of
// its local targets, the events file and an mbox. Reports events/s over
// that span. Spooling 5000 mails through the shim takes longer than the
// drain, so it is done once per test binary and each run starts from a
// copy of that state directory (synced to disk before the clock starts).
func BenchmarkBacklogDrain(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := newDaemon(b, drainNotifications)
		copyTree(b, backlogTemplate(b), d.stateDir)
		events := &countingFile{path: filepath.Join(d.stateDir, "events.jsonl"), prefix: "{"}
		mbox := &countingFile{path: filepath.Join(d.stateDir, "backlog.mbox"), prefix: "From "}
		b.StartTimer()
		t0 := time.Now()
		d.start()
		deadline := t0.Add(5 * time.Minute)
		for events.count(b) < drainMails || mbox.count(b) < drainMails {
			if time.Now().After(deadline) {
				b.Fatalf("after 5 min the events file holds %d and the mbox %d of %d mails\n%s",
					events.n, mbox.n, drainMails, d.log())
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(t0)
		b.StopTimer()
		d.stop()
		if events.n != drainMails || mbox.n != drainMails {
			b.Fatalf("events file holds %d and mbox %d entries for %d mails: something was delivered twice",
				events.n, mbox.n, drainMails)
		}
	}
	b.ReportMetric(float64(drainMails*b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(drainMails), "mails")
}

var drainState struct {
	once sync.Once
	dir  string
}

// backlogTemplate returns a state directory holding drainMails mails in the
// maildrop, spooled by the shim while no daemon ran; it lives beside the
// test binaries and goes with them.
func backlogTemplate(b *testing.B) string {
	b.Helper()
	drainState.once.Do(func() {
		d := newDaemon(b, drainNotifications)
		// A first start creates the state directory the shim writes into.
		d.start()
		d.stop()
		spoolBacklog(b, d, drainMails)
		dir := filepath.Join(bins.dir, "backlog-state")
		copyTree(b, d.stateDir, dir)
		drainState.dir = dir
	})
	if drainState.dir == "" {
		b.Fatal("the backlog could not be spooled (see the first failure)")
	}
	return drainState.dir
}

// copyTree copies the directories and regular files under src to dst with
// their modes and owners (sockets a stopped daemon left are skipped: the
// daemon makes new ones), then syncs, so that writing the copy back does
// not land inside a measurement.
func copyTree(b *testing.B, src, dst string) {
	b.Helper()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := e.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case e.IsDir():
			if err := os.MkdirAll(to, fi.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(to, fi.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil
		}
		if st != nil {
			return os.Lchown(to, int(st.Uid), int(st.Gid))
		}
		return nil
	})
	if err != nil {
		b.Fatalf("copying %s to %s: %v", src, dst, err)
	}
	syscall.Sync()
}

// spoolBacklog submits n distinct 1 KB cron mails with the sendmail shim,
// as cron would while the daemon is down, eight at a time.
func spoolBacklog(b *testing.B, d *daemon, n int) {
	b.Helper()
	body := strings.Repeat("rsync: copied 1234 files, 56 MB, no errors reported by the tool\n", 14)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	next := make(chan int)
	errc := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cmd := exec.CommandContext(ctx, d.shim, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root")
				cmd.Env = d.env()
				cmd.Stdin = strings.NewReader(fmt.Sprintf(
					"From: root (Cron Daemon)\nTo: root\nSubject: drain-%d\n\n%s", i, body))
				if out, err := cmd.CombinedOutput(); err != nil {
					errc <- fmt.Errorf("sendmail for mail %d: %v\n%s", i, err, out)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if err != nil {
		b.Fatal(err)
	}
}

// countingFile counts the lines starting with prefix that a file grows by,
// reading only what was appended since the last call.
type countingFile struct {
	path    string
	prefix  string
	off     int64
	partial []byte
	n       int
}

func (c *countingFile) count(b *testing.B) int {
	f, err := os.Open(c.path)
	if os.IsNotExist(err) {
		return c.n
	}
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(c.off, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		b.Fatal(err)
	}
	c.off += int64(len(data))
	c.partial = append(c.partial, data...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		if bytes.HasPrefix(c.partial[:i], []byte(c.prefix)) {
			c.n++
		}
		c.partial = c.partial[i+1:]
	}
	return c.n
}
