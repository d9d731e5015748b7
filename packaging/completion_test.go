package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/target"
)

// The bash completion the package installs completes commands, queue
// actions, target names (from the configuration) and delivery IDs (from the
// queue), through the real herald binary.
func TestBashCompletion(t *testing.T) {
	bash := tool(t, "bash")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "herald"), "../cmd/herald")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg, state := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "notifications.cfg"), []byte("file: events-log\n\tpath /tmp/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	q, err := delivery.Open(delivery.Options{Dir: filepath.Join(state, "queue"),
		Target: func(string) (target.Target, bool) { return nil, false }})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(&event.Event{ID: "ev1", Timestamp: time.Now(), Fields: map[string]string{"type": "x"}}, []string{"events-log"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		t.Helper()
		script := `source ./bash-completion/herald
COMP_WORDS=(` + quoteWords(words) + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_herald
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HERALD_CONFIG_DIR="+cfg, "HERALD_STATE_DIR="+state)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completion of %q: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"herald", "qu"}, "queue"},
		{[]string{"herald", "queue", "fl"}, "flush"},
		{[]string{"herald", "test", "ev"}, "events-log"},
		{[]string{"herald", "test", "mail"}, "mail-to-root"},
		{[]string{"herald", "explain", "--js"}, "--json"},
		{[]string{"herald", "queue", "retry", "ev"}, "ev1.events-log"},
	}
	for _, tt := range tests {
		if got := complete(tt.words...); len(got) != 1 || got[0] != tt.want {
			t.Errorf("complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}
	if got := complete("herald", "queue", "show", "ev"); strings.Join(got, " ") != "ev1.events-log ev1" {
		t.Errorf("queue show completes %q, want the delivery and its event", got)
	}
	if got := complete("herald", ""); len(got) < 9 {
		t.Errorf("command completion lists %q", got)
	}
}

func quoteWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
