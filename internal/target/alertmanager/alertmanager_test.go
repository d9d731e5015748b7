package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/testkit"
)

// fakeAM is a scriptable stand-in for one Alertmanager: it records every
// POST /api/v2/alerts and answers with status (200 when 0).
type fakeAM struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	posts  [][]Alert
	auth   []string
}

func newFakeAM(t *testing.T) *fakeAM {
	f := &fakeAM{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("unexpected request %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		var alerts []Alert
		if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
			t.Errorf("body is not an alert list: %v", err)
		}
		f.mu.Lock()
		status := f.status
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		if status == 0 || status < 300 {
			f.posts = append(f.posts, alerts)
		}
		f.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			fmt.Fprintf(w, "refused: %s", r.Header.Get("Authorization"))
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAM) setStatus(s int) { f.mu.Lock(); f.status = s; f.mu.Unlock() }

func (f *fakeAM) received() [][]Alert {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.posts)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock(t time.Time) *clock    { return &clock{t: t} }
func heartbeat(id, status string, at time.Time, sev event.Severity) *event.Event {
	return &event.Event{ID: id, Timestamp: at, Severity: sev, Title: "backup " + status, Body: "no ping",
		Fields: map[string]string{"type": "heartbeat", "monitor": "backup", "status": status, "hostname": "pve1"}}
}

func newTarget(t *testing.T, opt Options) *Target {
	t.Helper()
	if opt.Name == "" {
		opt.Name = "am"
	}
	tg, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// Every member gets the alert, in Alertmanager's v2 shape; resolve-after
// sets endsAt from the delivery time.
func TestDeliverToEveryMember(t *testing.T) {
	a, b := newFakeAM(t), newFakeAM(t)
	clk := newClock(time.Date(2026, 1, 2, 3, 30, 0, 0, time.UTC))
	tg := newTarget(t, Options{URLs: []string{a.URL, b.URL + "/"}, ResolveAfter: time.Hour, Now: clk.now,
		EventURL: func(ev *event.Event) string { return "http://herald.example/events/" + ev.ID }})
	ev := mkEvent(event.Error, map[string]string{"type": "zfs", "hostname": "pve1", "pool": "tank"})
	if err := tg.Deliver(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*fakeAM{a, b} {
		got := f.received()
		if len(got) != 1 || len(got[0]) != 1 {
			t.Fatalf("posts = %v", got)
		}
		al := got[0][0]
		if al.Labels["alertname"] != "zfs" || al.Labels["pool"] != "tank" || al.Annotations["summary"] != ev.Title ||
			!al.StartsAt.Equal(ev.Timestamp) || !al.EndsAt.Equal(clk.now().Add(time.Hour)) ||
			al.GeneratorURL != "http://herald.example/events/ev1" {
			t.Fatalf("alert = %+v", al)
		}
	}
	// Without resolve-after endsAt is left to Alertmanager.
	raw := captureBody(t, Options{})
	if strings.Contains(raw, "endsAt") || strings.Contains(raw, "generatorURL") || !strings.Contains(raw, `"startsAt":"2026-01-02T03:04:05Z"`) {
		t.Fatalf("body %s", raw)
	}
}

// captureBody delivers mkEvent through a target built from opt and
// returns the raw request body.
func captureBody(t *testing.T, opt Options) string {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	opt.URLs = []string{srv.URL}
	if err := newTarget(t, opt).Deliver(context.Background(), mkEvent(event.Error, map[string]string{"type": "zfs"})); err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// A huge body is cut before it is sent: the request stays small.
func TestHugeBodyBounded(t *testing.T) {
	var size int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		size = len(b)
	}))
	defer srv.Close()
	ev := mkEvent(event.Error, map[string]string{"type": "big"})
	ev.Body = strings.Repeat("line of output\n", 1<<20)
	if err := newTarget(t, Options{URLs: []string{srv.URL}}).Deliver(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	t.Logf("a %d-byte body became a %d-byte request", len(ev.Body), size)
	if size == 0 || size > MaxDescription+4096 {
		t.Fatalf("request body %d bytes", size)
	}
}

// One member down: the delivery succeeds through the other, the failed
// member is owed the alert (Owe), and its member target delivers to it
// alone once it is back.
func TestOneMemberDownIsOwed(t *testing.T) {
	up, down := newFakeAM(t), newFakeAM(t)
	down.setStatus(http.StatusServiceUnavailable)
	var owed []string
	var owedEv *event.Event
	tg := newTarget(t, Options{URLs: []string{up.URL, down.URL}, Owe: func(ev *event.Event, ts []string) error {
		owedEv, owed = ev, ts
		return nil
	}})
	ev := mkEvent(event.Error, map[string]string{"type": "zfs"})
	if err := tg.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("one member accepted, yet: %v", err)
	}
	want := MemberTarget("am", down.URL)
	if owedEv != ev || !slices.Equal(owed, []string{want}) || len(up.received()) != 1 {
		t.Fatalf("owed %v (want %s), up got %d", owed, want, len(up.received()))
	}
	if len(want) <= 32 {
		t.Fatalf("member target name %q could be a section name", want)
	}
	mt := tg.Members()[want]
	if mt == nil {
		t.Fatalf("no member target %s in %v", want, slices.Collect(maps.Keys(tg.Members())))
	}
	if err := mt.Deliver(context.Background(), ev); err == nil || !target.IsTemporary(err) {
		t.Fatalf("member still down: %v", err)
	}
	down.setStatus(0)
	if err := mt.Deliver(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if len(down.received()) != 1 || len(up.received()) != 1 {
		t.Fatalf("member delivery reached down=%d up=%d", len(down.received()), len(up.received()))
	}
}

func TestNoMemberAccepts(t *testing.T) {
	a, b := newFakeAM(t), newFakeAM(t)
	ev := mkEvent(event.Error, map[string]string{"type": "zfs"})
	for _, tc := range []struct {
		sa, sb int
		temp   bool
	}{
		{http.StatusBadRequest, http.StatusBadRequest, false},
		{http.StatusBadRequest, http.StatusServiceUnavailable, true},
		{http.StatusInternalServerError, http.StatusTooManyRequests, true},
	} {
		a.setStatus(tc.sa)
		b.setStatus(tc.sb)
		err := newTarget(t, Options{URLs: []string{a.URL, b.URL}, Owe: func(*event.Event, []string) error {
			t.Fatal("nothing is owed when nobody accepted")
			return nil
		}}).Deliver(context.Background(), ev)
		if err == nil || target.IsTemporary(err) != tc.temp || !strings.Contains(err.Error(), "no alertmanager member accepted") {
			t.Errorf("%d/%d: %v (temporary %v)", tc.sa, tc.sb, err, target.IsTemporary(err))
		}
	}
	// A refused connection is temporary too.
	err := newTarget(t, Options{URLs: []string{"http://127.0.0.1:1"}}).Deliver(context.Background(), ev)
	if !target.IsTemporary(err) {
		t.Fatalf("refused: %v", err)
	}
}

// When the owed deliveries cannot be queued, the whole delivery is
// retried; without Owe (herald test), a failed member fails it.
func TestOweFailureRetriesDelivery(t *testing.T) {
	up, down := newFakeAM(t), newFakeAM(t)
	down.setStatus(http.StatusBadGateway)
	ev := mkEvent(event.Error, map[string]string{"type": "zfs"})
	err := newTarget(t, Options{URLs: []string{up.URL, down.URL}, Owe: func(*event.Event, []string) error {
		return errors.New("disk full")
	}}).Deliver(context.Background(), ev)
	if !target.IsTemporary(err) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("%v", err)
	}
	err = newTarget(t, Options{URLs: []string{up.URL, down.URL}}).Deliver(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 members accepted") {
		t.Fatalf("without Owe: %v", err)
	}
}

// A heartbeat down fires without endsAt, is re-sent while down, and the up
// resolves it with the same labels and endsAt = now; afterwards nothing is
// re-sent, and a stale down (older than the up) is not sent again.
func TestHeartbeatFiresUntilUp(t *testing.T) {
	am := newFakeAM(t)
	clk := newClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	opt := Options{URLs: []string{am.URL}, StateDir: dir, Now: clk.now, ResendInterval: time.Minute, ResolveAfter: time.Hour}
	tg := newTarget(t, opt)
	ctx := context.Background()
	down := heartbeat("d1", "down", clk.now(), event.Error)
	if err := tg.Deliver(ctx, down); err != nil {
		t.Fatal(err)
	}
	posts := am.received()
	fired := posts[0][0]
	if len(posts) != 1 || !fired.EndsAt.IsZero() || fired.Labels["monitor"] != "backup" || fired.Labels["status"] != "" {
		t.Fatalf("down posted %+v", posts)
	}

	tg.Resend(ctx) // first call: due at once (after a restart, too)
	clk.add(30 * time.Second)
	tg.Resend(ctx) // not due yet
	if n := len(am.received()); n != 2 {
		t.Fatalf("%d posts after two Resend calls within the interval, want 2", n)
	}
	// A new Target (a restart or reload) re-sends from the state on disk.
	clk.add(time.Minute)
	newTarget(t, opt).Resend(ctx)
	if got := am.received(); len(got) != 3 || !maps.Equal(got[2][0].Labels, fired.Labels) || !got[2][0].EndsAt.IsZero() {
		t.Fatalf("re-sent %+v", got)
	}

	clk.add(time.Minute)
	up := heartbeat("u1", "up", clk.now(), event.Info)
	if err := tg.Deliver(ctx, up); err != nil {
		t.Fatal(err)
	}
	resolved := am.received()[3][0]
	if !maps.Equal(resolved.Labels, fired.Labels) || !resolved.EndsAt.Equal(clk.now()) || !resolved.StartsAt.Equal(fired.StartsAt) {
		t.Fatalf("resolved %+v, fired %+v", resolved, fired)
	}
	clk.add(time.Hour)
	tg.Resend(ctx)
	if err := tg.Deliver(ctx, down); err != nil { // a stale retry of the down
		t.Fatal(err)
	}
	if err := tg.Deliver(ctx, heartbeat("u0", "up", clk.now(), event.Info)); err != nil {
		t.Fatal(err)
	}
	if n := len(am.received()); n != 5 { // only the repeated up, identical
		t.Fatalf("%d posts, want 5: %+v", n, am.received())
	}
	if last := am.received()[4][0]; !last.EndsAt.Equal(resolved.EndsAt) {
		t.Fatalf("repeated up %+v", last)
	}
}

// An up with nothing firing is not sent; a member owed a down that was
// resolved since is not sent the down.
func TestHeartbeatMemberAndUnknownUp(t *testing.T) {
	up, down := newFakeAM(t), newFakeAM(t)
	clk := newClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	down.setStatus(http.StatusServiceUnavailable)
	var owed []string
	tg := newTarget(t, Options{URLs: []string{up.URL, down.URL}, StateDir: t.TempDir(), Now: clk.now,
		Owe: func(_ *event.Event, ts []string) error { owed = append(owed, ts...); return nil }})
	ctx := context.Background()
	if err := tg.Deliver(ctx, heartbeat("u0", "up", clk.now(), event.Info)); err != nil || len(up.received()) != 0 {
		t.Fatalf("up without down: %v, %d posts", err, len(up.received()))
	}
	d := heartbeat("d1", "down", clk.now().Add(time.Second), event.Error)
	if err := tg.Deliver(ctx, d); err != nil || len(owed) != 1 {
		t.Fatalf("%v owed %v", err, owed)
	}
	clk.add(time.Minute)
	if err := tg.Deliver(ctx, heartbeat("u1", "up", clk.now(), event.Info)); err != nil {
		t.Fatal(err)
	}
	down.setStatus(0)
	if err := tg.Members()[owed[0]].Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	if n := len(down.received()); n != 0 {
		t.Fatalf("the member got a down that was resolved since: %+v", down.received())
	}
}

// An unreadable state file is moved aside with a log line, not deleted.
func TestStateUnreadableMovedAside(t *testing.T) {
	am := newFakeAM(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	tg := newTarget(t, Options{URLs: []string{am.URL}, StateDir: dir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := tg.Deliver(context.Background(), heartbeat("d1", "down", time.Now(), event.Error)); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, stateFile+".unreadable-*"))
	if len(aside) != 1 || !strings.Contains(logs.String(), "moved aside") {
		t.Fatalf("aside %v, logs %s", aside, logs.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := parseState(b); err != nil || st.Alerts["pve1/backup"] == nil {
		t.Fatalf("new state %s: %v", b, err)
	}
}

// Basic auth and bearer reach the server; a server echoing them, a
// refused connection and a 401 never show a credential in the error,
// Reply, String, %#v of target and options, or a log line.
func TestSecretsNeverLeak(t *testing.T) {
	const password, token = "pw-S3cret-9", "tok-S3cret-7"
	am := newFakeAM(t)
	am.setStatus(http.StatusUnauthorized)
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	for name, opt := range map[string]Options{
		"basic":   {URLs: []string{am.URL}, Username: "herald", Password: config.NewSecret(password)},
		"bearer":  {URLs: []string{am.URL}, Token: config.NewSecret(token)},
		"refused": {URLs: []string{"http://127.0.0.1:1", am.URL}, Token: config.NewSecret(token)},
		"partial": {URLs: []string{"http://herald:" + password + "@127.0.0.1:1"}, Username: "herald", Password: config.NewSecret(password)},
	} {
		opt.Name, opt.Log = "am", logger
		tg := newTarget(t, opt)
		err := tg.Deliver(context.Background(), mkEvent(event.Error, map[string]string{"type": "zfs"}))
		if err == nil {
			t.Fatalf("%s: delivery succeeded", name)
		}
		logger.Error("delivery failed", "target", tg, "options", opt, "err", err, "reply", target.Reply(err))
		testkit.NoSecretIn(t, []string{password, token}, map[string]any{name + ": error": err, name + ": reply": target.Reply(err),
			name + ": target": tg, name + ": options": opt})
	}
	testkit.NoSecretIn(t, []string{password, token}, map[string]any{"log": logBuf.String()})
	am.mu.Lock()
	auth := slices.Clone(am.auth)
	am.mu.Unlock()
	if !slices.Contains(auth, "Bearer "+token) || !slices.ContainsFunc(auth, func(s string) bool { return strings.HasPrefix(s, "Basic ") }) {
		t.Fatalf("credentials not sent: %q", auth)
	}
	if _, err := New(Options{Name: "am", URLs: []string{am.URL}, Username: "u", Password: config.NewSecret(password), Token: config.NewSecret(token)}); err == nil ||
		strings.Contains(err.Error(), password) || strings.Contains(err.Error(), token) {
		t.Fatalf("both credentials: %v", err)
	}
}

// ca-file: a member whose certificate the CA file vouches for is reached;
// without the CA file the same member fails.
func TestCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := mkEvent(event.Error, map[string]string{"type": "zfs"})
	if err := newTarget(t, Options{URLs: []string{srv.URL}, CAFile: ca}).Deliver(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := newTarget(t, Options{URLs: []string{srv.URL}}).Deliver(context.Background(), ev); err == nil {
		t.Fatal("an unknown CA was accepted")
	}
	if _, err := New(Options{Name: "am", URLs: []string{srv.URL}, CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Fatal("a missing ca-file was accepted")
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, opt := range map[string]Options{
		"no url":       {Name: "am"},
		"bad scheme":   {Name: "am", URLs: []string{"ftp://x"}},
		"query":        {Name: "am", URLs: []string{"http://x/?a=1"}},
		"duplicate":    {Name: "am", URLs: []string{"http://x", "http://x"}},
		"pw only":      {Name: "am", URLs: []string{"http://x"}, Password: config.NewSecret("p")},
		"neg. resolve": {Name: "am", URLs: []string{"http://x"}, ResolveAfter: -time.Second},
	} {
		if _, err := New(opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseState: the state parser never panics, and what it accepts
// survives a write and a read unchanged.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"alerts":{"h/m":{"alert":{"labels":{"alertname":"heartbeat"}},"status":"firing","event_id":"e","event_time":"2026-01-01T00:00:00Z","changed":"2026-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2,"alerts":{}}`))
	f.Add([]byte(`{"version":1,"alerts":{"x":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseState(out)
		if err != nil {
			t.Fatalf("re-read of %s: %v", out, err)
		}
		if len(again.Alerts) != len(st.Alerts) {
			t.Fatalf("%d alerts, then %d", len(st.Alerts), len(again.Alerts))
		}
	})
}

// A re-send racing an up: the re-send must not post its firing snapshot
// after the up resolved the alert (which would fire it again until
// resolve_timeout). The member holds the up's request until the re-send
// either finished (the bug) or had ample time to.
func TestResendDoesNotOvertakeUp(t *testing.T) {
	var mu sync.Mutex
	var posts []Alert
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alerts []Alert
		_ = json.NewDecoder(r.Body).Decode(&alerts)
		if len(alerts) == 1 && !alerts[0].EndsAt.IsZero() {
			close(entered)
			<-release
		}
		mu.Lock()
		posts = append(posts, alerts...)
		mu.Unlock()
	}))
	defer srv.Close()
	clk := newClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	tg := newTarget(t, Options{URLs: []string{srv.URL}, StateDir: t.TempDir(), Now: clk.now})
	ctx := context.Background()
	if err := tg.Deliver(ctx, heartbeat("d1", "down", clk.now(), event.Error)); err != nil {
		t.Fatal(err)
	}
	tg.Resend(ctx)
	clk.add(time.Hour) // the next re-send is due
	upDone, resendDone := make(chan error, 1), make(chan struct{})
	go func() { upDone <- tg.Deliver(ctx, heartbeat("u1", "up", clk.now(), event.Info)) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the up never reached the member")
	}
	go func() { tg.Resend(ctx); close(resendDone) }()
	select {
	case <-resendDone:
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-upDone; err != nil {
		t.Fatal(err)
	}
	select {
	case <-resendDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Resend did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	if last := posts[len(posts)-1]; last.EndsAt.IsZero() {
		t.Fatalf("a firing re-send came after the resolution: %+v", posts)
	}
	if len(posts) != 3 { // down, first re-send, up
		t.Fatalf("%d posts, want 3: %+v", len(posts), posts)
	}
}

// BenchmarkDeliverTwoMembers: one delivery to an HA pair over loopback.
func BenchmarkDeliverTwoMembers(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
	a, c := httptest.NewServer(ok), httptest.NewServer(ok)
	defer a.Close()
	defer c.Close()
	tg, err := New(Options{Name: "am", URLs: []string{a.URL, c.URL}})
	if err != nil {
		b.Fatal(err)
	}
	ev := mkEvent(event.Error, map[string]string{"type": "zfs", "hostname": "pve1", "pool": "tank"})
	for b.Loop() {
		if err := tg.Deliver(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

// A second down with other labels (a higher severity) replaces the firing
// alert: the old one is resolved in the same request, the new one fires
// and is the one re-sent; a second down with the same labels keeps the
// outage's startsAt.
func TestHeartbeatDownChangesLabels(t *testing.T) {
	am := newFakeAM(t)
	clk := newClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	tg := newTarget(t, Options{URLs: []string{am.URL}, StateDir: t.TempDir(), Now: clk.now})
	ctx := context.Background()
	start := clk.now()
	for _, sev := range []event.Severity{event.Warning, event.Warning, event.Error} {
		if err := tg.Deliver(ctx, heartbeat("d-"+sev.String(), "down", clk.now(), sev)); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Minute)
	}
	posts := am.received()
	if len(posts) != 3 || !posts[1][0].StartsAt.Equal(start) || len(posts[1]) != 1 {
		t.Fatalf("repeated down: %+v", posts)
	}
	last := posts[2]
	if len(last) != 2 || last[0].Labels["severity"] != "error" || !last[0].EndsAt.IsZero() ||
		last[1].Labels["severity"] != "warning" || last[1].EndsAt.IsZero() {
		t.Fatalf("changed down posted %+v", last)
	}
	tg.Resend(ctx)
	if got := am.received(); len(got) != 4 || len(got[3]) != 1 || got[3][0].Labels["severity"] != "error" {
		t.Fatalf("re-send %+v", got[len(got)-1])
	}
}
