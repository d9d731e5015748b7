package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The man pages must name every key: a key added without documentation
// fails here. man escapes '-' as '\-'.
func TestManPagesNameEveryKey(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "man", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), `\-`, "-")
	}
	cfg := read("herald.cfg.5")
	for k := range daemonKeys {
		if !strings.Contains(cfg, ".BI "+k+" ") && !strings.Contains(cfg, ".B "+k+"\n") {
			t.Errorf("herald.cfg(5) does not document key %s", k)
		}
	}
	notif := read("notifications.cfg.5")
	for name, def := range sectionTypes {
		if !strings.Contains(notif, ".BR "+name+" :") {
			t.Errorf("notifications.cfg(5) does not document section type %s", name)
			continue
		}
		keys := slices.Collect(func(yield func(string) bool) {
			for k := range def.keys {
				if !yield(k) {
					return
				}
			}
			for k := range def.priv {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			if !strings.Contains(notif, ".BI "+k+" ") {
				t.Errorf("notifications.cfg(5) does not document key %s of %s", k, name)
			}
		}
	}
}
