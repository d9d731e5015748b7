package app

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// File descriptor headroom (docs/limits.md). Every SMTP session holds a
// socket, and one that is submitting a message holds a spool file and
// briefly its directory as well. The SMTP session cap is therefore kept at
// (soft RLIMIT_NOFILE - fd-reserve) / fdsPerSession, so that a flood of
// idle sessions leaves the spool scan, the delivery queue, the HTTP API
// and /healthz the descriptors they need.
const fdsPerSession = 2

// noFileLimit raises the soft RLIMIT_NOFILE to the hard limit when it is
// lower and returns the soft limit in force. The Go runtime already raises
// it at start-up (and restores the original for child processes, which
// calling Setrlimit would undo), so Setrlimit is called only when the soft
// limit is still below the hard one.
func noFileLimit(log *slog.Logger) uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
		return 0
	}
	if rl.Cur < rl.Max {
		raised := unix.Rlimit{Cur: rl.Max, Max: rl.Max}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the open-file limit", "soft", rl.Cur, "hard", rl.Max, "err", err)
			return rl.Cur
		}
		rl = raised
	}
	return rl.Cur
}

// sessionCap is the SMTP session cap: the configured one, lowered to what
// the open-file limit leaves after the reserve, and at least 1.
func sessionCap(configured int, nofile uint64, reserve int) int {
	if nofile == 0 {
		return configured
	}
	avail := (int64(min(nofile, 1<<30)) - int64(reserve)) / fdsPerSession
	return int(max(1, min(int64(configured), avail)))
}

// smtpSessionCap computes the cap for the daemon and logs when the open-file
// limit lowers it.
func (a *App) smtpSessionCap(configured, reserve int) int {
	nofile := noFileLimit(a.log)
	n := sessionCap(configured, nofile, reserve)
	if n < configured {
		a.log.Warn("smtp-max-sessions lowered to fit the open-file limit", "configured", configured,
			"sessions", n, "nofile", nofile, "fd_reserve", reserve)
	}
	return n
}
