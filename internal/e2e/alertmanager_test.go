package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"herald/internal/testkit"
)

// These tests run herald against the real Prometheus Alertmanager binary
// (Debian's prometheus-alertmanager), started on loopback ports: a single
// instance, and an HA pair gossiping on loopback whose webhook receiver
// must be notified once per alert.

// amMember is one Alertmanager process of a test cluster.
type amMember struct {
	t       *testing.T
	bin     string
	dir     string
	web     int
	cluster int
	peers   []int
	// webConfig, when set, is the text of Alertmanager's --web.config.file
	// (basic auth users).
	webConfig string
	cmd       *exec.Cmd
	done      chan struct{}
	logs      *testkit.Buffer
}

// amConfig routes every alert to the webhook at hook, grouping by
// alertname, hostname and monitor, and resolves an alert that is not
// re-sent within resolveTimeout. group_interval stays well above the
// members' peer timeout (2 s): a member's notification waits that long
// before it checks what its peer sent, and a state change inside that
// window would be notified twice (docs/alertmanager.md).
func amConfig(hook string, resolveTimeout time.Duration) string {
	return fmt.Sprintf(`global:
  resolve_timeout: %s
route:
  receiver: hook
  group_by: ['alertname', 'hostname', 'monitor']
  group_wait: 1s
  group_interval: 10s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
    send_resolved: true
`, resolveTimeout, hook)
}

// newAMCluster prepares n members that peer with each other (gossip on
// loopback); none is started yet.
func newAMCluster(t *testing.T, n int, config string) []*amMember {
	t.Helper()
	bin := needTool(t, "prometheus-alertmanager")
	base := t.TempDir()
	cfg := filepath.Join(base, "alertmanager.yml")
	writeFile(t, cfg, config, 0o644)
	ms := make([]*amMember, n)
	for i := range ms {
		ms[i] = &amMember{t: t, bin: bin, dir: filepath.Join(base, fmt.Sprintf("am%d", i)),
			web: freePort(t), cluster: freePort(t), logs: &testkit.Buffer{}}
	}
	for i, m := range ms {
		for j, o := range ms {
			if i != j {
				m.peers = append(m.peers, o.cluster)
			}
		}
		t.Cleanup(m.stop)
	}
	return ms
}

func (m *amMember) url() string { return fmt.Sprintf("http://127.0.0.1:%d", m.web) }

// start runs the member and waits until it reports ready.
func (m *amMember) start() {
	m.t.Helper()
	args := []string{"--config.file", filepath.Join(filepath.Dir(m.dir), "alertmanager.yml"),
		"--storage.path", m.dir, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", m.web)}
	if m.webConfig != "" {
		wc := m.dir + "-web.yml"
		writeFile(m.t, wc, m.webConfig, 0o644)
		args = append(args, "--web.config.file", wc)
	}
	if len(m.peers) == 0 {
		args = append(args, "--cluster.listen-address=")
	} else {
		args = append(args, fmt.Sprintf("--cluster.listen-address=127.0.0.1:%d", m.cluster),
			fmt.Sprintf("--cluster.advertise-address=127.0.0.1:%d", m.cluster), "--cluster.peer-timeout=2s")
		for _, p := range m.peers {
			args = append(args, fmt.Sprintf("--cluster.peer=127.0.0.1:%d", p))
		}
	}
	m.cmd = exec.Command(m.bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.done = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, m.url()+"/-/ready", nil)
		req.SetBasicAuth(amUser, amPassword)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-m.done:
			m.cmd = nil
			m.t.Fatalf("alertmanager exited before it was ready:\n%s", m.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("alertmanager not ready on %s within 30 s:\n%s", m.url(), m.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *amMember) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// amAlert is an alert as Alertmanager's API v2 lists it.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// alerts lists the member's active alerts named alertname.
func (m *amMember) alerts(alertname string) []amAlert {
	m.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, m.url()+"/api/v2/alerts", nil)
	req.SetBasicAuth(amUser, amPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatalf("alertmanager API: %v\n%s", err, m.logs.String())
	}
	defer resp.Body.Close()
	var all []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		m.t.Fatal(err)
	}
	var out []amAlert
	for _, a := range all {
		if a.Labels["alertname"] == alertname {
			out = append(out, a)
		}
	}
	return out
}

// amReceiver is the webhook the Alertmanager cluster notifies.
type amReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	notes []amNotification
}

type amNotification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func newAMReceiver(t *testing.T) *amReceiver {
	r := &amReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var n amNotification
		if err := json.Unmarshal(b, &n); err != nil {
			t.Errorf("webhook body: %v: %s", err, b)
		}
		r.mu.Lock()
		r.notes = append(r.notes, n)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// count returns how many alerts named alertname were notified with status.
func (r *amReceiver) count(alertname, status string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, note := range r.notes {
		for _, a := range note.Alerts {
			if a.Labels["alertname"] == alertname && a.Status == status {
				n++
			}
		}
	}
	return n
}

// newAMDaemon starts herald with one alertmanager target "am" for the
// given members (extra lines go into its section) routing every event.
func newAMDaemon(t *testing.T, ms []*amMember, extra string) *daemon {
	var b strings.Builder
	b.WriteString("alertmanager: am\n")
	for _, m := range ms {
		fmt.Fprintf(&b, "\turl %s\n", m.url())
	}
	b.WriteString(extra)
	b.WriteString("\nmatcher: all\n\ttarget am\n")
	d := newDaemon(t, b.String())
	d.start()
	return d
}

// A single Alertmanager gets herald's event as an alert with the event's
// labels and annotations; resolve-after sets its end.
func TestAlertmanagerSingle(t *testing.T) {
	ms := newAMCluster(t, 1, amConfig("http://127.0.0.1:9/", 5*time.Minute))
	ms[0].start()
	d := newAMDaemon(t, ms, "\tresolve-after 1h\n")
	before := time.Now()
	d.run("", d.herald, "notify", "--severity", "error", "--type", "zfs", "--field", "pool=tank",
		"--field", "disk-id=sda", "--title", "pool tank degraded", "--body", "vdev sdc faulted")
	var got []amAlert
	waitFor(t, "the alert in Alertmanager", 30*time.Second, func() bool { got = ms[0].alerts("zfs"); return len(got) > 0 })
	a := got[0]
	// origin, uid and user are the daemon's record of who submitted the
	// event (docs/origin.md): herald notify, run by root.
	if a.Labels["severity"] != "error" || a.Labels["hostname"] != "testhost" || a.Labels["pool"] != "tank" ||
		a.Labels["disk-id"] != "" || a.Labels["origin"] != "notify" || a.Labels["uid"] != "0" || len(a.Labels) != 7 {
		t.Errorf("labels %v", a.Labels)
	}
	if a.Annotations["summary"] != "pool tank degraded" || !strings.Contains(a.Annotations["description"], "vdev sdc faulted") {
		t.Errorf("annotations %v", a.Annotations)
	}
	if a.EndsAt.Before(before.Add(59*time.Minute)) || a.EndsAt.After(time.Now().Add(61*time.Minute)) || a.Status.State != "active" {
		t.Errorf("endsAt %v (state %s), want about an hour from now", a.EndsAt, a.Status.State)
	}
	// The fleet metrics a central Prometheus alerts on.
	base := fmt.Sprintf("http://127.0.0.1:%d", d.httpPort)
	if v := metricValue(t, base, "herald_last_event_timestamp_seconds", map[string]string{"type": "zfs"}); v < float64(before.Unix()) {
		t.Errorf("herald_last_event_timestamp_seconds{type=zfs} = %v, want at least %d", v, before.Unix())
	}
	if v := metricValue(t, base, "herald_info", map[string]string{"hostname": "testhost"}); v != 1 {
		t.Errorf("herald_info{hostname=testhost} = %v", v)
	}
	if v := metricValue(t, base, "herald_deliveries_total", map[string]string{"target": "am", "outcome": "delivered"}); v != 1 {
		t.Errorf("herald_deliveries_total{target=am,outcome=delivered} = %v", v)
	}
	// The last event per type survives a restart: a job that went silent
	// before a reboot is still found silent after it.
	last := metricValue(t, base, "herald_last_event_timestamp_seconds", map[string]string{"type": "zfs"})
	d.stop()
	d.start()
	if v := metricValue(t, base, "herald_last_event_timestamp_seconds", map[string]string{"type": "zfs"}); v != last {
		t.Errorf("after a restart herald_last_event_timestamp_seconds{type=zfs} = %v, want %v", v, last)
	}
}

// An HA pair: the receiver is notified once per alert although both
// members have it; a heartbeat down stays firing past Alertmanager's
// resolve_timeout because herald re-sends it, and the up resolves it.
func TestAlertmanagerHAPair(t *testing.T) {
	recv := newAMReceiver(t)
	ms := newAMCluster(t, 2, amConfig(recv.URL+"/", 8*time.Second))
	ms[0].start()
	ms[1].start()
	// resolve-after keeps the one-shot zfs alert firing for the whole
	// test; the heartbeat alert has no end and lives by the re-sends alone.
	d := newAMDaemon(t, ms, "\tresend-interval 2s\n\tresolve-after 1h\n")

	start := time.Now()
	d.run("", d.herald, "notify", "--severity", "error", "--type", "zfs", "--field", "pool=tank",
		"--title", "pool tank degraded", "--body", "vdev sdc faulted")
	waitFor(t, "the alert in both members", 30*time.Second, func() bool {
		return len(ms[0].alerts("zfs")) == 1 && len(ms[1].alerts("zfs")) == 1
	})
	t.Logf("herald notify → alert in both members: %v", time.Since(start).Round(time.Millisecond))
	waitFor(t, "the receiver's notification", 60*time.Second, func() bool { return recv.count("zfs", "firing") > 0 })
	t.Logf("herald notify → receiver notified: %v (group_wait 1s, gossip settling)", time.Since(start).Round(time.Millisecond))

	d.run("", d.herald, "notify", "--severity", "error", "--type", "heartbeat", "--field", "monitor=backup",
		"--field", "status=down", "--title", "backup missed its heartbeat")
	waitFor(t, "the heartbeat firing at the receiver", 60*time.Second, func() bool { return recv.count("heartbeat", "firing") > 0 })
	// Twice resolve_timeout: without herald's re-sends the alert would be
	// resolved by now.
	time.Sleep(16 * time.Second)
	for i, m := range ms {
		if a := m.alerts("heartbeat"); len(a) != 1 || a[0].Status.State != "active" || a[0].Labels["monitor"] != "backup" {
			t.Fatalf("member %d: heartbeat alert %+v after 2× resolve_timeout\n%s", i, a, d.log())
		}
	}
	if n := recv.count("heartbeat", "resolved"); n != 0 {
		t.Fatalf("heartbeat resolved %d times while down", n)
	}

	d.run("", d.herald, "notify", "--severity", "info", "--type", "heartbeat", "--field", "monitor=backup",
		"--field", "status=up", "--title", "backup is back")
	waitFor(t, "the heartbeat resolved at the receiver", 60*time.Second, func() bool { return recv.count("heartbeat", "resolved") > 0 })
	// The second member has had time to notify (it waits the 2 s peer
	// timeout): deduplication over gossip leaves one notification per state.
	time.Sleep(6 * time.Second)
	if z, f, r := recv.count("zfs", "firing"), recv.count("heartbeat", "firing"), recv.count("heartbeat", "resolved"); z != 1 || f != 1 || r != 1 {
		recv.mu.Lock()
		notes := fmt.Sprintf("%+v", recv.notes)
		recv.mu.Unlock()
		t.Fatalf("notifications: zfs firing %d, heartbeat firing %d, resolved %d; want 1 each\n%s\nmember 0:\n%s\nmember 1:\n%s",
			z, f, r, notes, ms[0].logs.String(), ms[1].logs.String())
	}
}

// One member down: the other gets the alert at once, the failed member's
// delivery waits in the durable queue (across a SIGKILL of herald) and
// reaches the member once it is up.
func TestAlertmanagerMemberDownRetried(t *testing.T) {
	ms := newAMCluster(t, 2, amConfig("http://127.0.0.1:9/", 5*time.Minute))
	ms[0].start()
	d := newAMDaemon(t, ms, "")
	d.run("", d.herald, "notify", "--severity", "error", "--type", "zfs", "--title", "pool tank degraded")
	waitFor(t, "the alert in the live member", 30*time.Second, func() bool { return len(ms[0].alerts("zfs")) == 1 })

	owed := func(state string) []string {
		var out []string
		for _, id := range d.queueIDs(state) {
			if strings.Contains(id, ".am--member-") {
				out = append(out, id)
			}
		}
		return out
	}
	waitFor(t, "the down member's delivery pending", 30*time.Second, func() bool { return len(owed("pending")) == 1 })
	// The delivery itself succeeded: one member accepted it.
	var doneAM int
	for _, id := range d.queueIDs("done") {
		if strings.HasSuffix(id, ".am") {
			doneAM++
		}
	}
	if doneAM != 1 {
		t.Fatalf("the alertmanager delivery is not done:\n%s", d.run("", d.herald, "queue", "list"))
	}
	d.kill() // SIGKILL: what the queue has on disk is all there is
	d.start()
	id := owed("pending")
	if len(id) != 1 {
		t.Fatalf("owed delivery lost across a SIGKILL:\n%s", d.run("", d.herald, "queue", "list"))
	}
	ms[1].start()
	d.run("", d.herald, "queue", "retry", id[0])
	waitFor(t, "the alert in the recovered member", 30*time.Second, func() bool { return len(ms[1].alerts("zfs")) == 1 })
	waitFor(t, "the owed delivery done", 30*time.Second, func() bool { return len(owed("done")) == 1 })
	if !strings.Contains(d.log(), "alertmanager member failed") {
		t.Errorf("no log line about the failed member:\n%s", d.log())
	}
}

// The credentials of the basic-auth test: Alertmanager's web config holds
// the bcrypt hash of amPassword (made with Python's crypt, cost 4).
const (
	amUser         = "herald"
	amPassword     = "herald-AM-pass-7"
	amPasswordHash = "$2b$04$hXCFz8uZaDy4952aDkcx8OXOSukWAJl9OwEvhg9MdHs54YaKZ8Gny"
	amWrongPass    = "wrong-AM-pass-3"
)

// Basic auth against an Alertmanager that requires it: the right password
// gets the alert in, a wrong one is refused (a dead letter: 401 is
// permanent) and appears in no log line, `herald queue` output or error.
func TestAlertmanagerBasicAuth(t *testing.T) {
	ms := newAMCluster(t, 1, amConfig("http://127.0.0.1:9/", 5*time.Minute))
	ms[0].webConfig = "basic_auth_users:\n  " + amUser + ": " + amPasswordHash + "\n"
	ms[0].start()
	for _, tc := range []struct {
		password string
		ok       bool
	}{{amPassword, true}, {amWrongPass, false}} {
		d := newDaemon(t, fmt.Sprintf("alertmanager: am\n\turl %s\n\tusername %s\n\nmatcher: all\n\ttarget am\n", ms[0].url(), amUser))
		writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), "alertmanager: am\n\tpassword "+tc.password+"\n", 0o600)
		d.start()
		typ := "auth-" + fmt.Sprint(tc.ok)
		d.run("", d.herald, "notify", "--severity", "error", "--type", typ, "--title", "t")
		if tc.ok {
			waitFor(t, "the alert behind basic auth", 30*time.Second, func() bool { return len(ms[0].alerts(typ)) == 1 })
			continue
		}
		var dead []string
		waitFor(t, "the refused delivery dead", 30*time.Second, func() bool { dead = d.queueIDs("dead"); return len(dead) > 0 })
		out := d.run("", d.herald, "queue", "list") + d.run("", d.herald, "queue", "show", dead[0])
		if !strings.Contains(out, "401") {
			t.Errorf("queue output does not show the 401:\n%s", out)
		}
		for what, s := range map[string]string{"daemon log": d.log(), "queue output": out} {
			if strings.Contains(s, tc.password) {
				t.Errorf("the password is in the %s:\n%s", what, s)
			}
		}
		if n := len(ms[0].alerts(typ)); n != 0 {
			t.Errorf("the wrong password got %d alerts in", n)
		}
		d.stop()
	}
}
