package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"herald/internal/noise"
)

func TestExplainNoise(t *testing.T) {
	dir := configDir(t, configTestdata, "noise")
	t.Setenv("HERALD_STATE_DIR", t.TempDir())
	night := time.Date(2026, 12, 2, 23, 30, 0, 0, time.Local).Format(time.RFC3339)
	tests := []struct {
		name string
		ev   string
		want map[string]string // target → "rule action"
	}{
		{"quiet info to admins only", `{"severity":"info","title":"ok","fields":{"type":"cron"}}`,
			map[string]string{"admins": "nights hold", "events": " deliver"}},
		{"error bypasses", `{"severity":"error","title":"bad","fields":{"type":"cron"}}`,
			map[string]string{"admins": " deliver", "events": " deliver"}},
		{"smartd dedup", `{"severity":"warning","title":"disk","fields":{"type":"smartd"}}`,
			map[string]string{"admins": "disk-warnings deliver", "events": "disk-warnings deliver"}},
		{"bacula digest", `{"severity":"info","title":"job ok","fields":{"type":"bacula"}}`,
			map[string]string{"admins": "nights hold", "events": "daily-ok digest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "ev.json")
			if err := os.WriteFile(f, []byte(tt.ev), 0o644); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := run(t, "", "explain", "--config-dir", dir, "--event", f, "--at", night)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var x struct{ Noise []noise.Decision }
			if err := json.Unmarshal([]byte(out), &x); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, d := range x.Noise {
				got[d.Target] = d.Rule + " " + d.Action
				if d.Reason == "" {
					t.Errorf("decision without a reason: %+v", d)
				}
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestWebPrintsOneURLWithToken(t *testing.T) {
	cfg, state := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "herald.cfg"), []byte("http-listen 127.0.0.1:18123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HERALD_CONFIG_DIR", cfg)
	t.Setenv("HERALD_STATE_DIR", state)
	out, stderr, code := run(t, "", "web")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:18123/\?token=[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("herald web printed %q", out)
	}
	again, _, _ := run(t, "", "web")
	if again != out {
		t.Fatalf("a second call printed another URL: %q vs %q", again, out)
	}
	fi, err := os.Stat(filepath.Join(state, "web-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
}

func TestHistoryEmptyAndUsage(t *testing.T) {
	t.Setenv("HERALD_STATE_DIR", t.TempDir())
	out, _, code := run(t, "", "history", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty history: %d %q", code, out)
	}
	for _, args := range [][]string{{"history", "--since", "soon"}, {"history", "--severity", "fatal"}, {"history", "--grep", "("}} {
		if _, _, code := run(t, "", args...); code == 0 {
			t.Errorf("%v accepted", args)
		}
	}
}
