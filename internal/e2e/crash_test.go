package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/smtp"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileOnly routes every event to the file target alone: naming the matcher
// default-matcher keeps the built-in one (which would add mail-to-root)
// from being injected.
const fileOnly = `file: events
	path %[1]s/events.jsonl

matcher: default-matcher
	target events
`

// TestCrashSafety kills the daemon with SIGKILL again and again while
// several SMTP clients and sendmail shims submit a burst of messages. Every
// acknowledged message must reach the file target exactly once; none may
// arrive twice. A message whose submission failed is never resent under the
// same subject, so any duplicate is herald's.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Log("short mode: smaller burst")
	}
	d := newDaemon(t, fileOnly)
	d.start()

	const smtpClients, shimClients = 6, 2
	perClient := 400
	if testing.Short() {
		perClient = 60
	}
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		lives = map[int64]int{} // acknowledgements per incarnation of the daemon
	)
	ack := func(s string) {
		mu.Lock()
		acked[s] = true
		lives[d.restarts.Load()]++
		mu.Unlock()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var clients sync.WaitGroup
	addr := fmt.Sprintf("127.0.0.1:%d", d.port)
	for c := 0; c < smtpClients; c++ {
		clients.Add(1)
		go func(c int) {
			defer clients.Done()
			for n := 0; n < perClient && ctx.Err() == nil; n++ {
				subj := fmt.Sprintf("smtp-%d-%d", c, n)
				msg := "From: burst@example.org\r\nTo: root@localhost\r\nSubject: " + subj + "\r\n\r\n" +
					strings.Repeat("x", 900) + "\r\n"
				if err := smtp.SendMail(addr, nil, "burst@example.org", []string{"root@localhost"}, []byte(msg)); err == nil {
					ack(subj)
				} else {
					time.Sleep(5 * time.Millisecond) // daemon restarting
				}
			}
		}(c)
	}
	for c := 0; c < shimClients; c++ {
		clients.Add(1)
		go func(c int) {
			defer clients.Done()
			for n := 0; n < perClient/3 && ctx.Err() == nil; n++ {
				subj := fmt.Sprintf("shim-%d-%d", c, n)
				cmd := exec.CommandContext(ctx, d.shim, "-i", "root")
				cmd.Env = d.env()
				cmd.Stdin = strings.NewReader("Subject: " + subj + "\n\nfrom the shim\n")
				if err := cmd.Run(); err == nil {
					ack(subj)
				}
			}
		}(c)
	}

	// The killer: SIGKILL at random points, restart at once.
	stopKiller := d.killRepeatedly(t, 150*time.Millisecond, 450*time.Millisecond)
	clients.Wait()
	kills := stopKiller()

	mu.Lock()
	want, acking := len(acked), len(lives)
	mu.Unlock()
	// Many submissions fail while the daemon is down, and how many get
	// through depends on how busy the machine is. What shows that the
	// burst really ran against the daemon and its restarts is that
	// messages were acknowledged by most of its incarnations, not a count.
	if want < 50 || kills >= 4 && acking < (kills+1)/2 {
		t.Fatalf("%d messages were acknowledged, by %d of the daemon's %d incarnations: the burst did not get through\n%s",
			want, acking, kills+1, d.log())
	}
	// Wait for every acknowledged message, then for the queue to go quiet.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		seen := map[string]bool{}
		for _, ev := range d.events() {
			seen[ev.Title] = true
		}
		missing := 0
		for s := range acked {
			if !seen[s] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages never arrived after %d kills\n%s", missing, want, kills, tail(d.log(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.stop()
	count := d.titlesOnce(t)
	t.Logf("%d messages acknowledged (by %d of %d incarnations), %d events written, %d SIGKILLs", want, acking, kills+1, len(count), kills)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// killRepeatedly SIGKILLs the daemon at random moments (every to
// every+spread) and restarts it at once, until the returned stop is called;
// stop leaves the daemon running and returns how many kills there were.
func (d *daemon) killRepeatedly(t *testing.T, every, spread time.Duration) (stop func() int) {
	stopKiller := make(chan struct{})
	killerDone := make(chan int)
	go func() {
		kills := 0
		for {
			select {
			case <-stopKiller:
				killerDone <- kills
				return
			case <-time.After(every + time.Duration(rand.Int64N(int64(spread)))):
			}
			d.kill()
			kills++
			d.restarts.Add(1)
			if err := d.tryStart(); err != nil {
				t.Error(err)
				killerDone <- kills
				return
			}
		}
	}()
	return func() int {
		close(stopKiller)
		kills := <-killerDone
		if d.cmd == nil {
			d.start()
		}
		return kills
	}
}
