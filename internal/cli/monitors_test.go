package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/sysexits"
)

func TestCheckAndExplainHeartbeats(t *testing.T) {
	d := configDir(t, configTestdata, "heartbeats")
	out, errs, code := run(t, "", "check", "--config-dir", d)
	if code != 0 || !strings.Contains(out, "3 heartbeats, 2 usage watches") {
		t.Fatalf("check exit %d: %s %s", code, out, errs)
	}
	f := filepath.Join(t.TempDir(), "ev.json")
	os.WriteFile(f, []byte(`{"severity":"error","timestamp":"2026-12-02T03:00:00Z","title":"backup failed","fields":{"type":"vzdump","hostname":"pve1"}}`), 0o644)
	out, errs, code = run(t, "", "explain", "--config-dir", d, "--event", f)
	if code != 0 {
		t.Fatalf("explain exit %d: %s", code, errs)
	}
	var x struct {
		Heartbeats []struct{ Heartbeat, Outcome, Reason string }
	}
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range x.Heartbeats {
		got[h.Heartbeat] = h.Outcome
	}
	want := map[string]string{"nightly-vzdump": "failure", "kuma-push": "none", "bacula-weekly": "none"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("explain: %s %q, want %q (%+v)", k, got[k], v, x.Heartbeats)
		}
	}
	if strings.Contains(out+errs, "tok-kuma-4711-abc") {
		t.Fatal("explain printed the push token")
	}
	// A token shared by two heartbeats is refused without being shown.
	priv := "heartbeat: kuma-push\n\tpush-token tok-kuma-4711-abc\n\nheartbeat: nightly-vzdump\n\tpush-token tok-kuma-4711-abc\n"
	os.WriteFile(filepath.Join(d, "notifications-priv.cfg"), []byte(priv), 0o600)
	out, errs, code = run(t, "", "check", "--config-dir", d)
	if code != 1 || !strings.Contains(errs, "same push-token") || strings.Contains(out+errs, "tok-kuma-4711-abc") {
		t.Fatalf("check of a shared token: exit %d\n%s%s", code, out, errs)
	}
}

func TestMonitorsWithoutDaemon(t *testing.T) {
	state := t.TempDir()
	t.Setenv("HERALD_STATE_DIR", state)
	t.Setenv("HERALD_CONFIG_DIR", configDir(t, configTestdata, "heartbeats"))
	for _, args := range [][]string{{"monitors", "pause", "x"}, {"monitors", "resume", "nightly-vzdump"}} {
		_, errs, code := run(t, "", args...)
		if code != sysexits.Unavailable || !strings.Contains(errs, "not running") {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
	// The list shows the state the daemon last recorded.
	os.MkdirAll(filepath.Join(state, "monitors"), 0o700)
	os.WriteFile(filepath.Join(state, "monitors", "state.json"), []byte(`{"version":1,"heartbeats":{
		"nightly-vzdump":{"since":"2026-12-01T00:00:00Z","anchor":"2026-12-01T00:00:00Z","down":true,"reason":"missed","down-since":"2026-12-02T02:00:00Z"}}}`), 0o600)
	out, errs, code := run(t, "", "monitors", "--json")
	if code != 0 || !strings.Contains(errs, "not running") {
		t.Fatalf("offline list: exit %d %s", code, errs)
	}
	var list []struct{ Name, State, Reason string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range list {
		got[m.Name] = m.State + "/" + m.Reason
	}
	want := map[string]string{"nightly-vzdump": "down/missed", "kuma-push": "new/", "bacula-weekly": "new/",
		"backup-volume": "new/", "root-fs": "paused/"}
	if len(got) != len(want) {
		t.Fatalf("offline list %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
	if out, _, code := run(t, "", "monitors"); code != 0 || !strings.Contains(out, "down (missed)") {
		t.Fatalf("offline table: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"monitors", "pause"}, {"monitors", "resume", "a", "b"}, {"monitors", "--bogus"}, {"monitors", "x"}} {
		if _, _, code := run(t, "", args...); code != sysexits.Usage {
			t.Errorf("%v: exit %d, want usage", args, code)
		}
	}
}
