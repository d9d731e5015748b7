package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/target"
)

func testEvent() *event.Event {
	return &event.Event{
		ID:        "0b6ac4b1-1f6e-4b0e-9d7a-3c1d2e4f5a6b",
		Timestamp: time.Date(2025, 3, 4, 2, 5, 0, 0, time.UTC),
		Severity:  event.Warning,
		Title:     "smartd: /dev/sda \x00has bad sectors",
		Body:      "Device: /dev/sda\nCurrently unreadable (pending) sectors: 8\n",
		Fields:    map[string]string{"type": "smartd", "hostname": "nas1", "device": "/dev/sda", "job-id": "7"},
	}
}

// writeScript writes a shell script into dir. Commands run it with
// "sh PATH" rather than executing the file, which avoids ETXTBSY when
// another goroutine forks while the file is still open for writing.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("set -e\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustNew(t *testing.T, opt Options) *Target {
	t.Helper()
	tgt, err := New(opt)
	if err != nil {
		t.Fatalf("New(%+v): %v", opt, err)
	}
	return tgt
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the command did not write %s: %v", path, err)
	}
	return b
}

func TestDeliverStdinAndEnv(t *testing.T) {
	// herald's own environment must not reach the command.
	t.Setenv("CREDENTIALS_DIRECTORY", "/run/credentials/herald.service")
	t.Setenv("HERALD_LEAK_CANARY", "secret")

	out := t.TempDir()
	work := t.TempDir()
	script := writeScript(t, out, "hook.sh", `cat > "$OUT/stdin"
env -0 > "$OUT/env"
`)
	tgt := mustNew(t, Options{
		Command: "sh " + script,
		Env:     []string{"OUT=" + out, "LANG=C", "EMPTY="},
		Dir:     work,
	})
	ev := testEvent()
	if err := tgt.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}

	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if got := readFile(t, filepath.Join(out, "stdin")); !bytes.Equal(got, want) {
		t.Fatalf("stdin:\n got %q\nwant %q", got, want)
	}
	var back event.Event
	if err := json.Unmarshal(want, &back); err != nil || back.Body != ev.Body || back.Title != ev.Title {
		t.Fatalf("stdin JSON does not decode to the event: %v %+v", err, back)
	}

	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(readFile(t, filepath.Join(out, "env"))), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	wantEnv := map[string]string{
		"PATH":                  "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG":                  "C",
		"HOME":                  "/",
		"OUT":                   out,
		"EMPTY":                 "",
		"PWD":                   work, // exported by the shell from Dir
		"HERALD_EVENT_ID":       ev.ID,
		"HERALD_SEVERITY":       "warning",
		"HERALD_TITLE":          "smartd: /dev/sda has bad sectors",
		"HERALD_BODY":           ev.Body,
		"HERALD_TIMESTAMP":      "2025-03-04T02:05:00Z",
		"HERALD_TYPE":           "smartd",
		"HERALD_HOSTNAME":       "nas1",
		"HERALD_FIELD_TYPE":     "smartd",
		"HERALD_FIELD_HOSTNAME": "nas1",
		"HERALD_FIELD_DEVICE":   "/dev/sda",
		"HERALD_FIELD_JOB_ID":   "7",
	}
	if !maps.Equal(env, wantEnv) {
		t.Fatalf("environment:\n got %q\nwant %q", env, wantEnv)
	}
}

func TestDeliverDefaultDir(t *testing.T) {
	out := t.TempDir()
	tgt := mustNew(t, Options{Command: `pwd > "$OUT/pwd"`, Env: []string{"OUT=" + out}})
	if err := tgt.Deliver(context.Background(), testEvent()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got := string(readFile(t, filepath.Join(out, "pwd"))); got != "/\n" {
		t.Fatalf("working directory %q, want /", got)
	}
}

func TestDeliverOutcomes(t *testing.T) {
	noise := `i=0; while [ $i -lt 300 ]; do echo "noise line $i" >&2; i=$((i+1)); done; `
	tests := []struct {
		name    string
		command string
		dir     string
		temp    bool
		ok      bool
		text    string // in the error
		reply   string // suffix of Reply
	}{
		{name: "success", command: "cat >/dev/null; exit 0", ok: true},
		{name: "success without reading stdin", command: "true", ok: true},
		{name: "tempfail", command: "echo 'server busy' >&2; exit 75", temp: true, text: "retry", reply: "server busy"},
		{name: "permanent", command: noise + "echo 'final: bad token' >&2; exit 1", text: "status 1", reply: "final: bad token"},
		{name: "other status", command: "exit 2", text: "status 2"},
		{name: "not found", command: "no-such-command-herald", text: "status 127", reply: "not found"},
		{name: "killed by signal", command: "echo dying >&2; kill -KILL $$", temp: true, text: "signal", reply: "dying"},
		{name: "missing dir", command: "true", dir: "/nonexistent/herald-test", text: "working directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt := mustNew(t, Options{Command: tt.command, Dir: tt.dir})
			ev := testEvent()
			ev.Body = strings.Repeat("big body that overflows the pipe\n", 10000)
			err := tgt.Deliver(context.Background(), ev)
			if tt.ok {
				if err != nil {
					t.Fatalf("Deliver: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Deliver succeeded, want an error")
			}
			var te *target.Error
			if !errors.As(err, &te) || te.Temp != tt.temp || target.IsTemporary(err) != tt.temp {
				t.Fatalf("error %v (%T): want a target.Error with Temp=%v", err, err, tt.temp)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %q does not mention %q", err, tt.text)
			}
			if !strings.HasSuffix(te.Reply, tt.reply) {
				t.Fatalf("Reply %q does not end with %q", te.Reply, tt.reply)
			}
			if tt.reply != "" && !strings.Contains(err.Error(), tt.reply) {
				t.Fatalf("error %q does not carry the stderr snippet %q", err, tt.reply)
			}
			if len(te.Reply) > maxStderr+len("...") {
				t.Fatalf("Reply is %d bytes, want at most the last %d of stderr", len(te.Reply), maxStderr)
			}
			if strings.HasPrefix(tt.command, noise) && !strings.HasPrefix(te.Reply, "...") {
				t.Fatalf("truncated Reply %q not marked", te.Reply[:20])
			}
		})
	}
}

// processGone waits until pid no longer runs. A zombie counts as gone: it
// is dead and only waits to be reaped, which in a container whose PID 1
// does not reap may never happen.
func processGone(t *testing.T, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Kill(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			return
		}
		if stat, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); rerr == nil {
			// The state follows the command name in parentheses.
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still alive 5s after the timeout (kill: %v)", what, pid, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b := readFile(t, path)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid file %s: %q", path, b)
	}
	return pid
}

func TestDeliverTimeoutKillsGroup(t *testing.T) {
	out := t.TempDir()
	child := writeScript(t, out, "child.sh", `echo $$ > "$OUT/child.pid"
sleep 300 &
echo $! > "$OUT/grandchild.pid"
echo started >&2
wait
`)
	const timeout = time.Second
	tgt := mustNew(t, Options{Command: "sh " + child, Timeout: timeout, Env: []string{"OUT=" + out}})
	start := time.Now()
	err := tgt.Deliver(context.Background(), testEvent())
	elapsed := time.Since(start)
	if err == nil || !target.IsTemporary(err) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Deliver = %v; want a temporary timeout error", err)
	}
	if target.Reply(err) != "started" {
		t.Fatalf("Reply %q, want the command's stderr", target.Reply(err))
	}
	// Had the grandchild survived, it would hold stderr open and Deliver
	// would only return after waitDelay.
	if elapsed > timeout+tgt.waitDelay {
		t.Fatalf("Deliver took %v with a %v timeout: something kept stderr open", elapsed, timeout)
	}
	processGone(t, "child shell", readPid(t, filepath.Join(out, "child.pid")))
	processGone(t, "sleeping grandchild", readPid(t, filepath.Join(out, "grandchild.pid")))
}

func TestDeliverCancelled(t *testing.T) {
	out := t.TempDir()
	tgt := mustNew(t, Options{Command: `echo $$ > "$OUT/pid"; exec sleep 300`, Env: []string{"OUT=" + out}})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := tgt.Deliver(ctx, testEvent())
	if err == nil || !target.IsTemporary(err) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("Deliver = %v; want a temporary cancellation error", err)
	}
	processGone(t, "command", readPid(t, filepath.Join(out, "pid")))

	// Already cancelled: nothing starts.
	err = tgt.Deliver(ctx, testEvent())
	if err == nil || !target.IsTemporary(err) {
		t.Fatalf("Deliver with a done context = %v; want a temporary error", err)
	}
}

// TestDeliverBackgroundChild: a command that succeeds but leaves a
// background process holding stderr must not hang the delivery.
func TestDeliverBackgroundChild(t *testing.T) {
	out := t.TempDir()
	tgt := mustNew(t, Options{Command: `sleep 30 & echo $! > "$OUT/pid"; exit 0`, Env: []string{"OUT=" + out}})
	tgt.waitDelay = 200 * time.Millisecond
	start := time.Now()
	err := tgt.Deliver(context.Background(), testEvent())
	pid := readPid(t, filepath.Join(out, "pid"))
	t.Cleanup(func() {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			t.Errorf("killing background sleep: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Deliver took %v", d)
	}
}

func TestDeliverHugeBody(t *testing.T) {
	out := t.TempDir()
	script := writeScript(t, out, "hook.sh", `cat > "$OUT/stdin"
printf '%s' "$HERALD_BODY" > "$OUT/body"
printf '%s' "${HERALD_BODY_TRUNCATED-unset}" > "$OUT/truncated"
`)
	tgt := mustNew(t, Options{Command: "sh " + script, Env: []string{"OUT=" + out}})
	ev := testEvent()
	// An odd offset puts MaxEnvValue in the middle of a two-byte character.
	ev.Body = "x" + strings.Repeat("é", 100000)
	if err := tgt.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	var got event.Event
	if err := json.Unmarshal(readFile(t, filepath.Join(out, "stdin")), &got); err != nil {
		t.Fatalf("stdin is not the event JSON: %v", err)
	}
	if got.Body != ev.Body {
		t.Fatalf("stdin body has %d bytes, want all %d", len(got.Body), len(ev.Body))
	}
	body := string(readFile(t, filepath.Join(out, "body")))
	if len(body) != MaxEnvValue-1 || !strings.HasPrefix(ev.Body, body) || !utf8.ValidString(body) {
		t.Fatalf("HERALD_BODY has %d bytes (valid UTF-8: %v); want the first %d bytes up to a character boundary",
			len(body), utf8.ValidString(body), MaxEnvValue-1)
	}
	if tr := string(readFile(t, filepath.Join(out, "truncated"))); tr != "1" {
		t.Fatalf("HERALD_BODY_TRUNCATED = %q, want 1", tr)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		err  string
	}{
		{"empty", Options{}, "empty command"},
		{"blank", Options{Command: " \t\n"}, "empty command"},
		{"nul", Options{Command: "echo \x00"}, "NUL"},
		{"negative timeout", Options{Command: "true", Timeout: -time.Second}, "negative timeout"},
		{"env without =", Options{Command: "true", Env: []string{"FOO"}}, `"FOO"`},
		{"env empty key", Options{Command: "true", Env: []string{"=x"}}, "KEY=value"},
		{"ok", Options{Command: "true", Env: []string{"A=", "B=c=d"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt, err := New(tt.opt)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if tgt.opt.Timeout != DefaultTimeout || tgt.opt.Dir != "/" {
					t.Fatalf("defaults not applied: %+v", tgt.opt)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("New error %v, want one mentioning %q", err, tt.err)
			}
		})
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty", nil, ""},
		{"short", []string{"a\n", "b\n"}, "a\nb"},
		{"exact", []string{strings.Repeat("x", 8)}, strings.Repeat("x", 8)},
		{"overflow", []string{"0123", "456789"}, "...23456789"},
		{"split rune", []string{"aé", "bcdefgh"}, "...bcdefgh"}, // the cut lands inside é
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := &tail{max: 8}
			for _, w := range tt.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := tl.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzEnvValue(f *testing.F) {
	f.Add("plain")
	f.Add("a\x00b")
	f.Add(strings.Repeat("é", MaxEnvValue))
	f.Add("x" + strings.Repeat("€", MaxEnvValue/2))
	f.Fuzz(func(t *testing.T, v string) {
		got := envValue(v)
		stripped := strings.ReplaceAll(v, "\x00", "")
		if strings.ContainsRune(got, 0) || len(got) > MaxEnvValue || !strings.HasPrefix(stripped, got) {
			t.Fatalf("envValue(%d bytes) = %d bytes: want a NUL-free prefix of at most %d", len(v), len(got), MaxEnvValue)
		}
		if len(stripped) <= MaxEnvValue && got != stripped {
			t.Fatal("a short value was changed beyond dropping NULs")
		}
		if utf8.ValidString(stripped) && !utf8.ValidString(got) {
			t.Fatal("cut inside a character")
		}
		if len(stripped) > MaxEnvValue && len(got) < MaxEnvValue-utf8.UTFMax {
			t.Fatalf("cut too short: %d bytes", len(got))
		}
	})
}
