package history

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: whatever a segment holds (torn lines, foreign JSON, records
// that contradict each other), Read neither fails nor panics, and every
// entry it returns has an event.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		`{"kind":"event","time":"2025-06-02T10:00:00Z","event":{"id":"e1","timestamp":"2025-06-02T10:00:00Z","severity":"info","title":"t","body":"b","fields":{"type":"x"}},"targets":["a"]}` + "\n" +
			`{"kind":"delivery","time":"2025-06-02T10:00:01Z","event_id":"e1","target":"a","state":"done","attempts":1}` + "\n",
		`{"kind":"event","event":null}` + "\n" + `{"kind":"delivery","event_id":"nope"}`,
		`{"kind":"event","time":"2025-06-02T10:00:00Z","event":{"id":"e1","severity":"bogus"}}`,
		"\x00\xff{", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "20250602-100000.000000000-000001.jsonl"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		entries, err := Read(dir, Filter{Type: "x", Limit: 5})
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for _, e := range entries {
			if e.Event == nil || e.Deliveries == nil || e.Targets == nil {
				t.Fatalf("incomplete entry %+v", e)
			}
		}
	})
}
