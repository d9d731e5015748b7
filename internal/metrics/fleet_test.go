package metrics

import (
	"fmt"
	"testing"
	"time"

	"herald/internal/version"
)

// The fleet metrics: the last event per type (bounded like the event
// counter) and herald_info with the host name.
func TestFleetMetrics(t *testing.T) {
	m := New()
	fams := scrape(t, m)
	if _, ok := value(fams, "herald_last_event_timestamp_seconds", map[string]string{"type": "zfs"}); ok {
		t.Fatal("a last-event series before any event")
	}
	if v, ok := value(fams, "herald_info", map[string]string{"hostname": "", "version": version.Version}); !ok || v != 1 {
		t.Fatalf("herald_info before SetHostname: %v %v", v, ok)
	}
	m.SetHostname("pve1")
	before := time.Now()
	m.Event("zfs", "error")
	for i := range MaxEventTypes + 5 {
		m.Event(fmt.Sprintf("t%d", i), "info")
	}
	fams = scrape(t, m)
	v, ok := value(fams, "herald_last_event_timestamp_seconds", map[string]string{"type": "zfs"})
	if !ok || v < float64(before.Unix()) || v > float64(time.Now().Unix()+1) {
		t.Fatalf("last zfs event at %v (%v), want about %d", v, ok, before.Unix())
	}
	if _, ok := value(fams, "herald_last_event_timestamp_seconds", map[string]string{"type": Other}); !ok {
		t.Fatal("types beyond the bound are not counted as other")
	}
	if n := len(fams["herald_last_event_timestamp_seconds"].GetMetric()); n != MaxEventTypes+1 {
		t.Fatalf("%d last-event series, want %d", n, MaxEventTypes+1)
	}
	if v, ok := value(fams, "herald_info", map[string]string{"hostname": "pve1", "version": version.Version}); !ok || v != 1 {
		t.Fatalf("herald_info: %v %v", v, ok)
	}
}

// Restored last-event times show up at once, never replace a newer one,
// and are bounded like the types of live events, the most recent kept.
func TestRestoreLastEvents(t *testing.T) {
	m := New()
	m.Event("zfs", "error")
	old := time.Unix(1_700_000_000, 0)
	in := map[string]time.Time{"zfs": old, "vzdump": old, Other: old}
	for i := range MaxEventTypes + 10 {
		in[fmt.Sprintf("t%d", i)] = old.Add(-time.Duration(i+1) * time.Hour) // older than vzdump
	}
	m.RestoreLastEvents(in)
	got := m.LastEvents()
	if !got["vzdump"].Equal(old) || !got["zfs"].After(old) {
		t.Fatalf("vzdump %v, zfs %v", got["vzdump"], got["zfs"])
	}
	if len(got) > MaxEventTypes+1 {
		t.Fatalf("%d types after restoring, bound is %d", len(got), MaxEventTypes+1)
	}
	if _, ok := got[fmt.Sprintf("t%d", MaxEventTypes+9)]; ok {
		t.Fatal("the oldest type was kept over more recent ones")
	}
	m.Event("brand-new", "info") // over the bound now: counted as other
	if _, ok := m.LastEvents()["brand-new"]; ok {
		t.Fatal("a new type beyond the bound got its own series")
	}
}
