package metrics

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLastEventsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "last-events.json")
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

	m := New()
	f := &LastEventsFile{Path: path}
	if err := f.Load(m); err != nil {
		t.Fatalf("a missing file: %v", err)
	}
	if err := f.Save(m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("nothing changed, yet the file was written: %v", err)
	}
	m.RestoreLastEvents(map[string]time.Time{"vzdump": at})
	if err := f.Save(m); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("saved again without a change")
	}
	m.RestoreLastEvents(map[string]time.Time{"vzdump": at.Add(time.Hour)})
	if err := f.Save(m); err != nil {
		t.Fatal(err)
	}

	// A restarted daemon gets the times back.
	m2 := New()
	if err := (&LastEventsFile{Path: path}).Load(m2); err != nil {
		t.Fatal(err)
	}
	if got := m2.LastEvents()["vzdump"]; !got.Equal(at.Add(time.Hour)) {
		t.Fatalf("restored %v, want %v", got, at.Add(time.Hour))
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&LastEventsFile{Path: path}).Load(New()); err == nil {
		t.Fatal("an unreadable file loads without an error")
	}
}
