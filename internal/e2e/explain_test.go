package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `herald explain --event` and the daemon decode and complete an event the
// same way: with `hostname testhost` in herald.cfg, an event without a
// hostname field matches `exact:hostname=testhost` in both, and events that
// take the other routes agree too.
func TestExplainRoutesLikeTheDaemon(t *testing.T) {
	d := newDaemon(t, `file: events
	path %[1]s/events.jsonl

file: this-host
	path %[1]s/this-host.jsonl

matcher: everything
	target events

matcher: by-host
	match-field exact:hostname=testhost
	target this-host
`)
	d.start()
	cases := []struct {
		title, json string
	}{
		{"no hostname", `{"severity":"info","title":"no hostname","fields":{"type":"job"}}`},
		{"other host", `{"severity":"info","title":"other host","fields":{"type":"job","hostname":"elsewhere"}}`},
		{"this host named", `{"severity":"error","title":"this host named","fields":{"type":"job","hostname":"testhost"}}`},
		// Last: it goes to both in either reading, and delivery to this-host
		// is in order, so once it is there the others have been decided.
		{"sentinel", `{"severity":"info","title":"sentinel","fields":{"type":"job","hostname":"testhost"}}`},
	}
	explained := map[string]bool{} // title -> explain routes it to this-host
	for _, c := range cases {
		f := filepath.Join(t.TempDir(), "ev.json")
		if err := os.WriteFile(f, []byte(c.json), 0o644); err != nil {
			t.Fatal(err)
		}
		out := d.run("", d.herald, "explain", "--event", f)
		var x struct{ Targets []string }
		if err := json.Unmarshal([]byte(out), &x); err != nil {
			t.Fatalf("explain output: %v\n%s", err, out)
		}
		explained[c.title] = strings.Contains(strings.Join(x.Targets, ","), "this-host")
		// The daemon: the same JSON through the HTTP API.
		d.run("", "curl", "-sS", "--fail", "-H", "Content-Type: application/json", "--data-binary", "@"+f,
			fmt.Sprintf("http://127.0.0.1:%d/api/v1/events", d.httpPort))
	}
	if !explained["no hostname"] || explained["other host"] || !explained["sentinel"] {
		t.Errorf("explain routes %v; want no hostname and sentinel to this-host", explained)
	}
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for !strings.Contains(got, `"title":"sentinel"`) {
		if time.Now().After(deadline) {
			t.Fatalf("sentinel never reached this-host\n%s", d.log())
		}
		time.Sleep(25 * time.Millisecond)
		b, _ := os.ReadFile(filepath.Join(d.stateDir, "this-host.jsonl"))
		got = string(b)
	}
	for title, want := range explained {
		if delivered := strings.Contains(got, `"title":"`+title+`"`); delivered != want {
			t.Errorf("%q: explain says this-host %v, the daemon delivered %v", title, want, delivered)
		}
	}
}
