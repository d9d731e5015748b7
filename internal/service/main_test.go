package service

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
)

// helperDir holds binaries built once for the whole test run.
var helperDir string

// helperEnv makes the test binary act as a child process for a test
// instead of running the tests (see TestNewLogHandlerJournalStream).
const helperEnv = "HERALD_SERVICE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "loghandler" {
		// Which handler would herald pick with this process's stderr and
		// JOURNAL_STREAM?
		fmt.Printf("%T\n", NewLogHandler(os.Stdout, slog.LevelInfo))
		os.Exit(0)
	}
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
