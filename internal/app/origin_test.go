package app

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"herald/internal/event"
	"herald/internal/spool"
)

// setOrigin trusts only what the kernel reported: the maildrop file's owner
// (never a peer-uid written into a maildrop entry), or the peer uid the
// daemon's own listeners recorded; a submitter's origin, uid and user
// fields are overwritten or removed.
func TestSetOrigin(t *testing.T) {
	state := t.TempDir()
	sp, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp.SetLimits(spool.Limits{MinFree: 1})
	d, err := spool.OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	zero, peer := 0, 1000
	body := strings.NewReader(`{"severity":"error","fields":{"type":"vzdump"}}`)
	if _, err := d.Submit(spool.Envelope{Kind: spool.KindEvent, Source: "notify", PeerUID: &zero}, body, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Submit(spool.Envelope{Kind: spool.KindMail, Source: "smtp", PeerUID: &peer}, strings.NewReader("x"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Submit(spool.Envelope{Kind: spool.KindMail, Source: "smtp", Remote: "192.0.2.1:25"}, strings.NewReader("x"), 0); err != nil {
		t.Fatal(err)
	}
	es, err := sp.Pending()
	if err != nil || len(es) != 3 {
		t.Fatalf("%d entries, %v", len(es), err)
	}
	names := map[int]string{1000: "alice", os.Getuid(): "me"}
	lookup := func(uid int) string { return names[uid] }
	want := []map[string]string{
		{"origin": "notify", "uid": strconv.Itoa(os.Getuid()), "user": "me"},
		{"origin": "smtp", "uid": "1000", "user": "alice"},
		{"origin": "smtp"},
	}
	for i, e := range es {
		ev := &event.Event{Fields: map[string]string{"type": "vzdump", "origin": "forged", "uid": "0", "user": "root"}}
		setOrigin(ev, e, lookup)
		for _, k := range []string{"origin", "uid", "user"} {
			if ev.Fields[k] != want[i][k] {
				t.Errorf("entry %d (%s): field %s = %q, want %q", i, e.Env.Source, k, ev.Fields[k], want[i][k])
			}
		}
		if _, ok := ev.Fields["uid"]; ok != (want[i]["uid"] != "") {
			t.Errorf("entry %d: uid present %v", i, ok)
		}
	}
}
