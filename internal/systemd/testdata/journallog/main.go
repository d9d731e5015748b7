// Command journallog is a test helper for internal/systemd: it logs through
// systemd.NewLogHandler(os.Stderr, debug) the records the test expects and
// exits. The test builds it with go-systemd's journal socket path moved to a
// fake journald (-ldflags -X) and runs it with JOURNAL_STREAM naming its
// stderr, as systemd does. With the argument "kind" it only prints the type
// of the handler NewLogHandler picks.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"herald/internal/systemd"
)

func main() {
	h := systemd.NewLogHandler(os.Stderr, slog.LevelDebug)
	if len(os.Args) == 2 && os.Args[1] == "kind" {
		fmt.Printf("%T\n", h)
		return
	}
	log := slog.New(h)
	log.Info("mail accepted", "event_id", "E1", "size", 1234)
	log.With("delivery_id", "D7").WithGroup("smtp").Warn("relay deferred\nwill retry",
		"target", "relay", "reply", "451 4.3.0 try later\nsecond line", "err", errors.New("temporary"))
	log.Debug("debug line")
}
