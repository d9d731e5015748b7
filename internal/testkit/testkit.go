// Package testkit holds what herald's tests share: finding the real
// programs that integration tests drive, needing root, the one secret-leak
// assertion every credentialed target's test makes (NoSecretIn), and a
// buffer a logger in another goroutine can write to (Buffer). It is
// imported by tests only.
//
// Integration tests never skip for a missing tool in a full run: a test
// that cannot find its client fails and says how to install it (make test
// installs them all). In a short run (go test -short, which `make unit`
// uses: no root, no apt, seconds) they are skipped instead, missing tool or
// not, so the quick loop runs only the unit tests.
package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// InstallHint says how to get every tool the integration tests use.
const InstallHint = "run scripts/install-test-deps.sh as root (make test does)"

// Tool returns the path of the program name, looked for in paths and then
// in PATH; pkg names the Debian package that has it. A missing program
// fails the test with how to install it. In a short run the test is
// skipped: it is an integration test.
func Tool(t testing.TB, name, pkg string, paths ...string) string {
	t.Helper()
	Integration(t)
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (Debian package %s): %s", name, pkg, InstallHint)
	}
	return p
}

// Root fails the test unless it runs as root, saying why it needs to; in a
// short run the test is skipped.
func Root(t testing.TB, why string) {
	t.Helper()
	Integration(t)
	if os.Geteuid() != 0 {
		t.Fatalf("this test must run as root (make test and CI do): %s", why)
	}
}

// Integration skips the test in a short run (make unit).
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: make test runs it")
	}
}
