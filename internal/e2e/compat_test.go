package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// brokenSectionsConfig has two targets that cannot work (an unknown key,
// which Proxmox refuses, in a webhook; a placeholder from-address, which
// Proxmox loads, in mail-to-root) next to a sound file target, and a matcher
// naming a target that does not exist.
const brokenSectionsConfig = `file: events
	path %[1]s/events.jsonl

webhook: hook
	url http://127.0.0.1:1/notify
	method post
	retries 3

sendmail: mail-to-root
	mailto-user root@pam
	from-address <FROM_ADDRESS>

matcher: everything
	target events
	target hook
	target mail-to-root
	target removed-long-ago
`

// TestBrokenSectionDisablesOnlyItself: the daemon starts although two
// target sections cannot work; the others deliver, the broken ones turn each
// delivery into a dead letter with the reason and a delivery-failed event,
// and one config-problem event says at start-up what is disabled. `herald
// check` still judges the file as Proxmox does (exit 1 for the unknown key).
func TestBrokenSectionDisablesOnlyItself(t *testing.T) {
	d := newDaemon(t, brokenSectionsConfig)
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), "webhook: hook\n", 0o600)
	d.start()

	problem := d.waitEvent("herald on testhost: 2 notification target(s) disabled by configuration problems")
	if problem.Fields["type"] != "config-problem" || problem.Fields["targets"] != "hook,mail-to-root" ||
		!strings.Contains(problem.Body, "unknown property 'retries'") || !strings.Contains(problem.Body, "placeholder") {
		t.Fatalf("config-problem event %+v", problem)
	}

	d.run("Subject: still delivered\n\nbody\n", d.shim, "root")
	d.waitEvent("still delivered")
	for _, tg := range []string{"hook", "mail-to-root"} {
		ev := d.waitEvent(fmt.Sprintf("herald on testhost: delivery to %s failed", tg))
		if !strings.Contains(ev.Body, "disabled by a configuration problem") {
			t.Errorf("delivery-failed event for %s does not say why: %s", tg, ev.Body)
		}
	}
	waitFor(t, "two dead letters:\n"+d.run("", d.herald, "queue", "list"), 20*time.Second, func() bool { return len(d.queueIDs("dead")) == 2 })
	if list := d.run("", d.herald, "queue", "list"); strings.Contains(list, "removed-long-ago") {
		t.Errorf("a target that does not exist was queued:\n%s", list)
	}
	if !strings.Contains(d.log(), "removed-long-ago") || !strings.Contains(d.log(), "does not exist") {
		t.Errorf("the missing target is not logged:\n%s", d.log())
	}

	out, code := d.runCode("", nil, d.herald, "check")
	if code != 1 || !strings.Contains(out, "unknown property 'retries'") || !strings.Contains(out, "warning: matcher 'everything': target 'removed-long-ago'") {
		t.Errorf("herald check: exit %d\n%s", code, out)
	}
}

// TestUnparsableMatcherStopsTheDaemon: a matcher rule that does not parse
// makes routing ambiguous: the daemon refuses to start with exit 78
// (EX_CONFIG), naming FILE:LINE.
func TestUnparsableMatcherStopsTheDaemon(t *testing.T) {
	d := newDaemon(t, "file: events\n\tpath %[1]s/events.jsonl\n\nmatcher: m\n\tmatch-severity fatal\n\ttarget events\n")
	out, code := d.runCode("", nil, d.herald, "serve")
	if code != 78 || !strings.Contains(out, "notifications.cfg:5") {
		t.Fatalf("herald serve: exit %d, want 78 naming the line\n%s", code, out)
	}
}

// TestDatacenterFile: with datacenter-file, Proxmox VE's email_from is the
// from-address of sendmail targets that set none, and http_proxy carries
// gotify's requests.
func TestDatacenterFile(t *testing.T) {
	var mu sync.Mutex
	var proxied []string
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = append(proxied, r.Method+" "+r.URL.String())
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"id":1}`)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go proxy.Serve(l)
	t.Cleanup(func() { proxy.Close() })

	d := newDaemon(t, "sendmail: mail-to-root\n\tmailto root\n\n"+
		"gotify: phone\n\tserver http://gotify.example.invalid\n\n"+
		"matcher: m1\n\ttarget mail-to-root\n\ttarget phone\n")
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), "gotify: phone\n\ttoken t0k3n-value\n", 0o600)
	dc := filepath.Join(d.configDir, "datacenter.cfg")
	writeFile(t, dc, "keyboard: en-us\nemail_from: pve-cluster@example.org\nhttp_proxy: http://"+l.Addr().String()+"\n", 0o644)
	cfg, err := os.ReadFile(filepath.Join(d.configDir, "herald.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.configDir, "herald.cfg"), string(cfg)+"datacenter-file "+dc+"\n", 0o644)
	d.start()
	d.run("", d.herald, "notify", "--severity", "info", "--type", "test", "--title", "from the datacenter")
	mbox := filepath.Join(d.stateDir, "mail", "root")
	waitFor(t, "the mail in root's mailbox", 30*time.Second, func() bool {
		b, _ := os.ReadFile(mbox)
		return strings.Contains(string(b), "from the datacenter")
	})
	b, _ := os.ReadFile(mbox)
	if !strings.Contains(string(b), "pve-cluster@example.org") {
		t.Errorf("the mail does not come from datacenter.cfg's email_from:\n%s", b)
	}
	waitFor(t, "gotify's request at the proxy", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(proxied) == 1 && proxied[0] == "POST http://gotify.example.invalid/message"
	})
}

// TestDamagedQueueFileBecomesDeadLetter: a queued event whose file is found
// truncated at start-up is not silently dropped: its delivery is a dead
// letter saying where the file went, herald emits delivery-failed, and
// `herald queue list` and /metrics show it.
func TestDamagedQueueFileBecomesDeadLetter(t *testing.T) {
	h := newHookServer(t) // down: the delivery stays pending
	d := newWebhookDaemon(t, h, "")
	d.start()
	d.run("Subject: will be damaged\n\nbody\n", d.shim, "root")
	d.waitEvent("will be damaged")
	waitFor(t, "a pending webhook delivery", 20*time.Second, func() bool { return len(d.queueIDs("pending")) == 1 })
	id := strings.TrimSuffix(d.queueIDs("pending")[0], ".hook")
	d.stop()
	p := filepath.Join(d.stateDir, "queue", "events", id+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, string(b[:len(b)/2]), 0o600)

	d.start()
	ev := d.waitEvent("herald on testhost: delivery to hook failed")
	if !strings.Contains(ev.Body, "quarantine") || ev.Fields["event-id"] != id {
		t.Errorf("delivery-failed event %+v", ev)
	}
	waitFor(t, "the dead letter", 20*time.Second, func() bool { return len(d.queueIDs("dead")) == 1 })
	if show := d.run("", d.herald, "queue", "show", id+".hook"); !strings.Contains(show, "was unreadable") {
		t.Errorf("queue show does not say why:\n%s", show)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", d.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(m), `herald_queue_deliveries{state="dead"} 1`) {
		t.Errorf("metrics do not count the dead letter:\n%s", m)
	}
}

// TestDeliveryFailedMasksEverySecret: a server that answers with another
// target's secret (a token shared between services) does not get it into
// the delivery-failed event that goes to every other target.
func TestDeliveryFailedMasksEverySecret(t *testing.T) {
	const other = "OTHER-TARGET-TOKEN-9931"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "token %s is not valid here", other)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	d := newDaemon(t, fmt.Sprintf("file: events\n\tpath %%[1]s/events.jsonl\n\n"+
		"webhook: plain\n\turl http://%s/x\n\tmethod post\n\n"+
		"gotify: phone\n\tserver http://127.0.0.1:1\n\n"+
		"matcher: m1\n\ttarget events\n\ttarget plain\n", l.Addr()))
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"),
		"webhook: plain\n\ngotify: phone\n\ttoken "+other+"\n", 0o600)
	d.start()
	d.run("Subject: shared token\n\nbody\n", d.shim, "root")
	ev := d.waitEvent("herald on testhost: delivery to plain failed")
	if strings.Contains(ev.Body, other) || !strings.Contains(ev.Body, "token <masked> is not valid") {
		t.Errorf("delivery-failed body: %s", ev.Body)
	}
}
