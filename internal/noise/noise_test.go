package noise

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// fakeQueue records what is enqueued, idempotently per (event, target) as
// the delivery queue is; fail makes the next calls fail.
type fakeQueue struct {
	mu   sync.Mutex
	got  map[string]*event.Event // "ID target" → event
	ord  []string
	fail error
}

func (q *fakeQueue) Enqueue(ev *event.Event, targets []string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		return q.fail
	}
	if q.got == nil {
		q.got = map[string]*event.Event{}
	}
	for _, t := range targets {
		k := ev.ID + " " + t
		if _, dup := q.got[k]; !dup {
			q.got[k] = ev
			q.ord = append(q.ord, k)
		}
	}
	return nil
}

func (q *fakeQueue) events() []*event.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]*event.Event, len(q.ord))
	for i, k := range q.ord {
		out[i] = q.got[k]
	}
	return out
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("notifications.cfg", []byte("file: ta\n\tpath /tmp/a\n\nfile: tb\n\tpath /tmp/b\n\n"+text), "", nil, config.LoadOptions{})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func open(t *testing.T, dir string, q Enqueuer, c *clock) *Engine {
	t.Helper()
	e, err := Open(Options{Dir: dir, Queue: q, Now: c.now, Location: time.UTC, Hostname: "pve1"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var n int

func dumpItems(t *testing.T, e *Engine) {
	for _, it := range e.Items() {
		t.Logf("%+v", it)
	}
}

func ev(typ string, sev event.Severity, title string, at time.Time) *event.Event {
	n++
	return &event.Event{ID: fmt.Sprintf("ev%04d", n), Timestamp: at, Severity: sev, Title: title, Body: "body of " + title,
		Fields: map[string]string{"type": typ, "hostname": "pve1"}}
}

// process runs ev through e and queues what is delivered now, as the
// daemon's ingest does.
func process(t *testing.T, e *Engine, cfg *config.Config, q *fakeQueue, x *event.Event, targets ...string) []Decision {
	t.Helper()
	now, ds, err := e.Process(cfg, x, targets)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(x, now); err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestDedupWindow(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: disk\n\tmatch-field exact:type=smartd\n\tdedup-window 6h\n")
	e := open(t, dir, q, c)

	first := ev("smartd", event.Warning, "disk almost full", c.t)
	if ds := process(t, e, cfg, q, first, "ta"); ds[0].Action != ActDeliver || ds[0].Rule != "disk" {
		t.Fatalf("first: %+v", ds)
	}
	var repeats []*event.Event
	for i := range 9 {
		c.advance(time.Minute)
		x := ev("smartd", event.Warning, "disk almost full", c.t)
		repeats = append(repeats, x)
		if ds := process(t, e, cfg, q, x, "ta"); ds[0].Action != ActCount {
			t.Fatalf("repeat %d: %+v", i, ds)
		}
	}
	// Another title, severity or type is not a repeat.
	other := ev("smartd", event.Error, "disk almost full", c.t)
	if ds := process(t, e, cfg, q, other, "ta"); ds[0].Action != ActDeliver {
		t.Fatalf("other severity: %+v", ds)
	}
	// A repeat processed twice (a crash between queueing and the spool
	// removal) counts once.
	process(t, e, cfg, q, repeats[3], "ta")
	if got := len(q.events()); got != 2 {
		t.Fatalf("queued %d events before the window ends, want 2", got)
	}

	// Restart inside the window: the count survives.
	e = open(t, dir, q, c)
	c.advance(6 * time.Hour)
	e.Release()
	evs := q.events()
	// first, other, and the summary of the first's window (other's had
	// no repeats: no summary).
	if len(evs) != 3 {
		t.Fatalf("queued %d events, want 3: %v", len(evs), titles(evs))
	}
	s := evs[2]
	if s.Fields["repeated"] != "9" || s.Fields["type"] != "smartd" || s.Fields["hostname"] != "pve1" ||
		s.Severity != event.Warning || !strings.Contains(s.Title, "repeated 9 times") {
		t.Fatalf("summary: %+v", s)
	}
	// The release left nothing behind, and a second release adds nothing.
	e.Release()
	if len(q.events()) != 3 || len(e.Items()) != 0 {
		t.Fatalf("after release: %d queued, items %+v", len(q.events()), e.Items())
	}
	// After the window, the same event is a first again.
	c.advance(time.Minute)
	if ds := process(t, e, cfg, q, ev("smartd", event.Warning, "disk almost full", c.t), "ta"); ds[0].Action != ActDeliver {
		t.Fatalf("after the window: %+v", ds)
	}
}

func TestDedupPerTargetLimits(t *testing.T) {
	c := &clock{t: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: only-b\n\tdedup-window 1h\n\ttarget tb\n")
	e := open(t, t.TempDir(), q, c)
	process(t, e, cfg, q, ev("x", event.Info, "t", c.t), "ta", "tb")
	ds := process(t, e, cfg, q, ev("x", event.Info, "t", c.t), "ta", "tb")
	got := map[string]string{}
	for _, d := range ds {
		got[d.Target] = d.Action
	}
	if got["ta"] != ActDeliver || got["tb"] != ActCount {
		t.Fatalf("decisions %v, want a delivered, b counted", got)
	}
}

func TestQuietHours(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: nights\n\tmatch-severity info,notice,error\n\tquiet-hours 22:00-07:00\n\tquiet-bypass-severity error\n")
	e := open(t, dir, q, c)

	a1 := ev("cron", event.Info, "backup ok", c.t)
	ds := process(t, e, cfg, q, a1, "ta", "tb")
	if ds[0].Action != ActHold || !ds[0].Until.Equal(time.Date(2025, 6, 3, 7, 0, 0, 0, time.UTC)) {
		t.Fatalf("info at night: %+v", ds)
	}
	c.advance(time.Hour)
	process(t, e, cfg, q, ev("cron", event.Notice, "update available", c.t), "ta")
	if ds := process(t, e, cfg, q, ev("cron", event.Error, "backup failed", c.t), "ta"); ds[0].Action != ActDeliver {
		t.Fatalf("error at night: %+v", ds)
	}
	if ds := process(t, e, cfg, q, ev("cron", event.Warning, "not selected", c.t), "ta"); ds[0].Action != ActDeliver || ds[0].Rule != "" {
		t.Fatalf("warning (not selected): %+v", ds)
	}
	if got := titles(q.events()); !slices.Equal(got, []string{"backup failed", "not selected"}) {
		t.Fatalf("delivered at night: %v", got)
	}

	// A reload that drops the rule does not lose what it holds; a restart
	// neither.
	e = open(t, dir, q, c)
	dumpItems(t, e)
	c.t = time.Date(2025, 6, 3, 6, 59, 0, 0, time.UTC)
	e.Release()
	if len(q.events()) != 2 {
		t.Fatalf("released before the window ended: %v", titles(q.events()))
	}
	c.advance(time.Minute)
	if next := e.Release(); !next.IsZero() {
		t.Fatalf("next release %s, want none", next)
	}
	evs := q.events()[2:]
	// Target a: two held → one digest; target b: one held → the event itself.
	var digest, single *event.Event
	for _, x := range evs {
		if x.Type() == "digest" {
			digest = x
		} else {
			single = x
		}
	}
	if len(evs) != 2 || digest == nil || single == nil || single.ID != a1.ID {
		t.Fatalf("released %v", titles(evs))
	}
	if digest.Fields["count"] != "2" || !strings.Contains(digest.Body, "backup ok") || !strings.Contains(digest.Body, "update available") ||
		!strings.Contains(digest.Body, "body of update available") || digest.Severity != event.Notice {
		t.Fatalf("digest: %+v", digest)
	}
	if _, ok := q.got[a1.ID+" tb"]; !ok {
		t.Fatalf("single held event went to the wrong target: %v", q.ord)
	}
}

func TestDigest(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: daily-ok\n\tmatch-field exact:type=bacula\n\tmatch-severity info\n\tdigest 08:00\n")
	e := open(t, dir, q, c)
	for i := range 3 {
		ds := process(t, e, cfg, q, ev("bacula", event.Info, fmt.Sprintf("job %d OK", i), c.t), "ta")
		if ds[0].Action != ActDigest || !ds[0].Until.Equal(time.Date(2025, 6, 3, 8, 0, 0, 0, time.UTC)) {
			t.Fatalf("decision %+v", ds)
		}
		c.advance(3 * time.Hour)
	}
	if ds := process(t, e, cfg, q, ev("bacula", event.Error, "job failed", c.t), "ta"); ds[0].Action != ActDeliver {
		t.Fatalf("error job: %+v", ds)
	}
	if len(q.events()) != 1 {
		t.Fatalf("queued before 08:00: %v", titles(q.events()))
	}
	c.t = time.Date(2025, 6, 3, 8, 0, 0, 0, time.UTC)
	e.Release()
	evs := q.events()
	if len(evs) != 2 {
		t.Fatalf("queued %v", titles(evs))
	}
	d := evs[1]
	if d.Type() != "digest" || d.Fields["count"] != "3" || d.Title != "Digest: 3 notifications" ||
		!strings.Contains(d.Body, "job 0 OK") || !strings.Contains(d.Body, "info") || !strings.Contains(d.Body, "2025-06-02T12:00:00Z") {
		t.Fatalf("digest %+v\n%s", d, d.Body)
	}
	// A single collected event still comes as a digest.
	process(t, e, cfg, q, ev("bacula", event.Info, "lonely", c.t), "ta")
	c.advance(24 * time.Hour)
	e.Release()
	if last := q.events()[len(q.events())-1]; last.Type() != "digest" || last.Fields["count"] != "1" {
		t.Fatalf("single digest %+v", last)
	}
}

// TestReleaseCrash: a crash after the digest was queued but while its held
// files were being removed must not deliver the remainder again.
func TestReleaseCrash(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: nights\n\tquiet-hours 22:00-07:00\n")
	e := open(t, dir, q, c)
	x1, x2 := ev("cron", event.Info, "one", c.t), ev("cron", event.Info, "two", c.t)
	process(t, e, cfg, q, x1, "ta")
	process(t, e, cfg, q, x2, "ta")
	// Simulate the crash: queue the digest and write the marker as
	// releaseGroup does, then remove only one held file.
	c.t = time.Date(2025, 6, 3, 7, 0, 0, 0, time.UTC)
	var names []string
	var g string
	for name, h := range e.held {
		names = append(names, name)
		g = h.group()
	}
	slices.Sort(names)
	hs := []*held{e.held[names[0]], e.held[names[1]]}
	if err := q.Enqueue(e.digest(g, hs), []string{"ta"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.write(releasedDir, g+".json", release{Group: g, Members: names}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, heldDir, names[0])); err != nil {
		t.Fatal(err)
	}
	e = open(t, dir, q, c)
	e.Release()
	if evs := q.events(); len(evs) != 1 || evs[0].Type() != "digest" {
		t.Fatalf("after the crash: %v", titles(evs))
	}
	if left, _ := os.ReadDir(filepath.Join(dir, heldDir)); len(left) != 0 {
		t.Fatalf("held files left: %v", left)
	}
}

// TestReleaseRetries: a queue that fails keeps the held state, and the
// next release delivers it once.
func TestReleaseRetries(t *testing.T) {
	c := &clock{t: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: dd\n\tdedup-window 1m\n")
	e := open(t, t.TempDir(), q, c)
	process(t, e, cfg, q, ev("x", event.Info, "t", c.t), "ta")
	process(t, e, cfg, q, ev("x", event.Info, "t", c.t), "ta")
	c.advance(time.Minute)
	q.fail = fmt.Errorf("disk full")
	if next := e.Release(); !next.Equal(c.t.Add(retryRelease)) {
		t.Fatalf("next after a failure: %s", next)
	}
	q.fail = nil
	e.Release()
	if evs := q.events(); len(evs) != 2 || evs[1].Fields["repeated"] != "1" {
		t.Fatalf("queued %v", titles(evs))
	}
}

// TestProcessIdempotentHold: a held event processed again (crash before
// the spool entry was removed) is held once.
func TestProcessIdempotentHold(t *testing.T) {
	c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: nights\n\tquiet-hours 22:00-07:00\n")
	dir := t.TempDir()
	e := open(t, dir, q, c)
	x := ev("cron", event.Info, "one", c.t)
	process(t, e, cfg, q, x, "ta")
	e = open(t, dir, q, c)
	process(t, e, cfg, q, x, "ta")
	if items := e.Items(); len(items) != 1 {
		t.Fatalf("items %+v", items)
	}
	c.t = c.t.Add(9 * time.Hour)
	e.Release()
	if evs := q.events(); len(evs) != 1 || evs[0].ID != x.ID {
		t.Fatalf("released %v", titles(evs))
	}
}

func TestPlanChangesNothing(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	cfg := parse(t, "noise: nights\n\tquiet-hours 22:00-07:00\n\ttarget ta\n")
	e := open(t, dir, q, c)
	ds := e.Plan(cfg, ev("cron", event.Info, "one", c.t), []string{"ta", "tb"}, c.t)
	if ds[0].Action != ActHold || ds[1].Action != ActDeliver || ds[1].Rule != "" {
		t.Fatalf("plan %+v", ds)
	}
	if len(e.Items()) != 0 {
		t.Fatal("Plan recorded state")
	}
	ro, err := Open(Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ro.Process(cfg, ev("cron", event.Info, "x", c.t), []string{"ta"}); err == nil {
		t.Fatal("read-only engine processed")
	}
}

func TestCorruptStateQuarantined(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
	e := open(t, dir, &fakeQueue{}, c)
	_ = e
	if err := os.WriteFile(filepath.Join(dir, heldDir, "x.ta.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, dedupDir, ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, dir, &fakeQueue{}, c)
	if _, err := os.Stat(filepath.Join(dir, quarantineDir, "held-x.ta.json")); err != nil {
		t.Fatalf("not quarantined: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, dedupDir, ".tmp-123")); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func titles(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, x := range evs {
		out[i] = x.Title
	}
	return out
}

// TestReloadKeepsHeld: a new configuration without the rule decides new
// events without it, and what the old rule held is still released.
func TestReloadKeepsHeld(t *testing.T) {
	c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	e := open(t, t.TempDir(), q, c)
	old := parse(t, "noise: nights\n\tquiet-hours 22:00-07:00\n")
	x := ev("cron", event.Info, "held by the old rule", c.t)
	process(t, e, old, q, x, "ta")
	reloaded := parse(t, "")
	if ds := process(t, e, reloaded, q, ev("cron", event.Info, "after the reload", c.t), "ta"); ds[0].Action != ActDeliver {
		t.Fatalf("after the reload: %+v", ds)
	}
	c.t = time.Date(2025, 6, 3, 7, 0, 0, 0, time.UTC)
	e.Release()
	if got := titles(q.events()); !slices.Equal(got, []string{"after the reload", "held by the old rule"}) {
		t.Fatalf("delivered %v", got)
	}
}

// TestDigestBounded: a huge quiet night still makes a digest of bounded
// size that names how many were left out.
func TestDigestBounded(t *testing.T) {
	c := &clock{t: time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	e := open(t, t.TempDir(), q, c)
	var hs []*held
	for i := range 3000 {
		x := ev("cron", event.Info, fmt.Sprintf("job %d", i), c.t)
		x.Body = strings.Repeat("b", 3000)
		hs = append(hs, &held{Kind: KindQuiet, Rule: "nights", Target: "ta", Release: c.t, Event: x})
	}
	d := e.digest("g", hs)
	if len(d.Body) > 1<<20 || !strings.Contains(d.Body, "and 1000 more") || !strings.Contains(d.Body, "more bodies left out") || d.Fields["count"] != "3000" {
		t.Fatalf("digest body %d bytes, count %s", len(d.Body), d.Fields["count"])
	}
}

func BenchmarkProcessRepeat(b *testing.B) {
	c := &clock{t: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)}
	q := &fakeQueue{}
	e, err := Open(Options{Dir: b.TempDir(), Queue: q, Now: c.now, Location: time.UTC})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse("n.cfg", []byte("file: ta\n\tpath /tmp/a\n\nnoise: flood\n\tdedup-window 1d\n"), "", nil, config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		x := &event.Event{ID: fmt.Sprintf("b%08d", i), Timestamp: c.t, Severity: event.Warning, Title: "disk almost full",
			Fields: map[string]string{"type": "smartd", "hostname": "h"}}
		if _, _, err := e.Process(cfg, x, []string{"ta"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProcessNoMatch(b *testing.B) {
	c := &clock{t: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)}
	e, err := Open(Options{Dir: b.TempDir(), Queue: &fakeQueue{}, Now: c.now, Location: time.UTC})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse("n.cfg", []byte("file: ta\n\tpath /tmp/a\n\nnoise: flood\n\tmatch-field exact:type=other\n\tdedup-window 1d\n"), "", nil, config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	x := &event.Event{ID: "x", Timestamp: c.t, Severity: event.Warning, Title: "t", Fields: map[string]string{"type": "smartd"}}
	b.ResetTimer()
	for range b.N {
		if _, _, err := e.Process(cfg, x, []string{"ta"}); err != nil {
			b.Fatal(err)
		}
	}
}
