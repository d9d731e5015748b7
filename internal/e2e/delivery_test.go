package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hookServer is a webhook receiver whose answer the test scripts: "refuse"
// (connection refused: the listener is closed), a status code, or 200.
type hookServer struct {
	t    testing.TB
	addr string

	mu     sync.Mutex
	status int
	got    map[string]int // title → deliveries
	srv    *http.Server
}

func newHookServer(t testing.TB) *hookServer {
	h := &hookServer{t: t, got: map[string]int{}, status: 200}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	l.Close()
	return h
}

// up starts answering with status; until then the port refuses.
func (h *hookServer) up(status int) {
	h.mu.Lock()
	h.status = status
	running := h.srv != nil
	h.mu.Unlock()
	if running {
		return
	}
	l, err := net.Listen("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		st := h.status
		if st == 200 {
			h.got[string(body)]++
		}
		h.mu.Unlock()
		w.WriteHeader(st)
		if st >= 400 {
			// Like many servers, echo what was asked for, re-encoded.
			fmt.Fprintf(w, "no route for %s (%s)", strings.ToLower(r.RequestURI),
				base64.StdEncoding.EncodeToString([]byte(r.RequestURI)))
		}
	})}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	go srv.Serve(l)
	h.t.Cleanup(func() { srv.Close() })
}

func (h *hookServer) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for k, v := range h.got {
		out[k] = v
	}
	return out
}

// webhookConfig routes everything to the file target and to a webhook whose
// body is the title and whose URL carries a secret.
const webhookConfig = `file: events
	path %[1]s/events.jsonl

webhook: hook
	url http://HOOKADDR/notify/{{ secrets.token }}
	method post
	body e3sgdGl0bGUgfX0=

matcher: everything
	target events
	target hook
`

const webhookPriv = `webhook: hook
	secret name=token,value=SE9PSy1TRUNSRVQtVE9LRU4=
`

const hookSecret = "HOOK-SECRET-TOKEN"

func newWebhookDaemon(t *testing.T, h *hookServer, extra string) *daemon {
	d := newDaemon(t, strings.ReplaceAll(webhookConfig, "HOOKADDR", h.addr)+extra)
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), webhookPriv, 0o600)
	return d
}

func (d *daemon) queueIDs(state string) []string {
	d.t.Helper()
	out := d.run("", d.herald, "queue", "list", "--all") // done ones too
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == state {
			ids = append(ids, f[0])
		}
	}
	return ids
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A target that refuses, then answers 503, then accepts: every event reaches
// it exactly once once it recovers, across a SIGKILL of the daemon, and
// `herald queue` shows and retries the pending deliveries without ever
// printing the webhook's secret.
func TestTargetDownThenRecovers(t *testing.T) {
	h := newHookServer(t)
	d := newWebhookDaemon(t, h, "")
	d.start()
	swaks := needTool(t, "swaks")
	send := func(subj string) {
		d.run("", swaks, "--server", "127.0.0.1", "--port", fmt.Sprint(d.port), "--to", "root@localhost",
			"--header", "Subject: "+subj, "--body", "x")
	}
	// Phase 1: refused.
	for i := 0; i < 3; i++ {
		send(fmt.Sprintf("down-%d", i))
	}
	d.waitEvents(3, 30*time.Second)
	waitFor(t, "3 pending webhook deliveries", 30*time.Second, func() bool { return len(d.queueIDs("pending")) == 3 })
	// mailq (sendmail -bp) lists the spool and the delivery queue: each
	// mail with the reason its delivery waits.
	if out := d.run("", d.shim, "-bp"); strings.Count(out, "(hook pending") != 3 || !strings.Contains(out, "3 Requests") {
		t.Fatalf("sendmail -bp does not show the pending deliveries:\n%s", out)
	}
	// Phase 2: 503 and a daemon killed in between.
	h.up(503)
	d.kill()
	d.start()
	send("down-3")
	d.waitEvents(4, 30*time.Second)
	for _, id := range d.queueIDs("pending") {
		d.run("", d.herald, "queue", "retry", id)
	}
	waitFor(t, "retried deliveries to fail again with 503", 30*time.Second, func() bool {
		out := d.run("", d.herald, "queue", "list")
		return strings.Count(out, "503") >= 4
	})
	show := d.run("", d.herald, "queue", "show", d.queueIDs("pending")[0])
	all := d.run("", d.herald, "queue", "list") + show + d.log()
	if strings.Contains(all, hookSecret) {
		t.Fatalf("the webhook secret was printed:\n%s", all)
	}
	if !strings.Contains(show, `"attempts"`) {
		t.Fatalf("queue show: %s", show)
	}
	// Phase 3: accepting. `herald queue retry` makes backed-off work due
	// (so does `sendmail -q`: TestMTASendmailQFlushesBackedOffDelivery).
	h.up(200)
	for _, id := range d.queueIDs("pending") {
		d.run("", d.herald, "queue", "retry", id)
	}
	waitFor(t, "all 4 events at the webhook", 30*time.Second, func() bool { return len(h.counts()) == 4 })
	// Once their outcome is recorded, a second crash must not resend them.
	// (Killed between the webhook's answer and that record, a remote
	// delivery is sent again: at least once is all a remote target allows.)
	waitFor(t, "the deliveries recorded as done", 30*time.Second, func() bool {
		return len(d.queueIDs("pending"))+len(d.queueIDs("inflight")) == 0 && len(d.queueIDs("done")) >= 4
	})
	d.kill()
	d.start()
	// The queue is recovered before the daemon listens: a delivery it would
	// send again is pending or in flight now, or has reached the webhook
	// already (its outcome is recorded only after the webhook answered).
	if n := len(d.queueIDs("pending")) + len(d.queueIDs("inflight")); n != 0 {
		t.Errorf("%d deliveries pending or in flight after the restart", n)
	}
	for title, n := range h.counts() {
		if n != 1 {
			t.Errorf("%s delivered %d times", title, n)
		}
	}
}

// A permanent failure (HTTP 400) dead-letters the delivery at once and
// herald emits its own delivery-failed event, routed to the other target.
func TestDeadLetterEmitsDeliveryFailed(t *testing.T) {
	h := newHookServer(t)
	h.up(400)
	d := newWebhookDaemon(t, h, "")
	d.start()
	d.run("Subject: will fail\n\nbody\n", d.shim, "root")
	ev := d.waitEvent(fmt.Sprintf("herald on testhost: delivery to %s failed", "hook"))
	if ev.Fields["type"] != "delivery-failed" || ev.Severity.String() != "error" || ev.Fields["target"] != "hook" {
		t.Fatalf("delivery-failed event %+v", ev)
	}
	if !strings.Contains(ev.Body, "no route for") {
		t.Fatalf("the server's answer is not in the delivery-failed body: %s", ev.Body)
	}
	waitFor(t, "a dead delivery", 20*time.Second, func() bool { return len(d.queueIDs("dead")) == 1 })
	id := d.queueIDs("dead")[0]
	// The server echoed the secret lower-cased and in base64: neither form
	// reaches the event sent to the other targets, the queue or the log.
	all := ev.Body + d.run("", d.herald, "queue", "show", id) + d.run("", d.herald, "queue", "list") + d.log()
	for _, form := range []string{hookSecret, strings.ToLower(hookSecret),
		base64.StdEncoding.EncodeToString([]byte("/notify/" + hookSecret))[4:30]} {
		if strings.Contains(all, form) {
			t.Fatalf("secret form %q in the delivery-failed event, queue or log:\n%s", form, all)
		}
	}
	d.run("", d.herald, "queue", "drop", id)
	if len(d.queueIDs("dead")) != 0 {
		t.Fatal("drop left the dead delivery")
	}
	if _, code := d.runCode("", nil, d.herald, "queue", "show", id); code != 1 {
		t.Fatalf("show of a dropped delivery: exit %d, want 1", code)
	}
}

// SIGHUP applies a valid configuration and refuses an invalid one, while
// deliveries stay queued: nothing is dropped or sent twice.
func TestReloadWhileDeliveriesPending(t *testing.T) {
	h := newHookServer(t) // down: deliveries stay pending
	d := newWebhookDaemon(t, h, "")
	d.start()
	d.run("Subject: before reload\n\nx\n", d.shim, "root")
	d.waitEvent("before reload")
	waitFor(t, "a pending webhook delivery", 20*time.Second, func() bool { return len(d.queueIDs("pending")) == 1 })

	// Valid: add a second file target.
	cfg := strings.ReplaceAll(webhookConfig, "HOOKADDR", h.addr) + "\tTARGET2\n\nfile: events2\n\tpath %[1]s/events2.jsonl\n"
	cfg = strings.Replace(cfg, "\tTARGET2\n", "\ttarget events2\n", 1)
	writeFile(t, filepath.Join(d.configDir, "notifications.cfg"), fmt.Sprintf(cfg, d.stateDir), 0o644)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", 20*time.Second, func() bool { return strings.Contains(d.log(), "configuration reloaded") })
	d.run("Subject: after reload\n\nx\n", d.shim, "root")
	d.waitEvent("after reload")
	waitFor(t, "events2.jsonl", 20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(d.stateDir, "events2.jsonl"))
		return strings.Contains(string(b), "after reload")
	})

	// Invalid: refused, the previous configuration stays.
	writeFile(t, filepath.Join(d.configDir, "notifications.cfg"), "matcher: broken\n\tmatch-severity fatal\n", 0o644)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload", 20*time.Second, func() bool { return strings.Contains(d.log(), "reload refused") })
	if !strings.Contains(d.log(), "notifications.cfg:2") {
		t.Errorf("the refusal does not name FILE:LINE:\n%s", d.log())
	}
	d.run("Subject: after bad reload\n\nx\n", d.shim, "root")
	waitFor(t, "routing with the old configuration", 20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(d.stateDir, "events2.jsonl"))
		return strings.Contains(string(b), "after bad reload")
	})

	// The webhook comes back: the three queued deliveries arrive once each.
	h.up(200)
	for _, id := range d.queueIDs("pending") {
		d.run("", d.herald, "queue", "retry", id)
	}
	waitFor(t, "3 webhook deliveries", 30*time.Second, func() bool { return len(h.counts()) == 3 })
	for title, n := range h.counts() {
		if n != 1 {
			t.Errorf("%q delivered %d times", title, n)
		}
	}
}
