package systemd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// helperDir holds binaries built once for the whole test run.
var helperDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-service-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperDir = dir
	code := m.Run()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// helpers are the test helper binaries under testdata/, built at most once
// per test run (building is the slow part).
var helpers struct {
	mu    sync.Mutex
	built map[string]string
}

// buildHelper builds the main package testdata/NAME with extra go build
// arguments (which become part of the cache key) and returns its path.
func buildHelper(t *testing.T, name string, buildArgs ...string) string {
	t.Helper()
	helpers.mu.Lock()
	defer helpers.mu.Unlock()
	key := fmt.Sprint(name, buildArgs)
	if p, ok := helpers.built[key]; ok {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go toolchain not in PATH: %v", err)
	}
	out := filepath.Join(helperDir, fmt.Sprintf("%s-%d", name, len(helpers.built)))
	args := append(append([]string{"build", "-o", out}, buildArgs...), ".")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = filepath.Join("testdata", name)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v in testdata/%s: %v\n%s", args, name, err, msg)
	}
	if helpers.built == nil {
		helpers.built = map[string]string{}
	}
	helpers.built[key] = out
	return out
}
