package systemd

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Watchdog pings WATCHDOG=1 at half the interval systemd asked for
// (WatchdogSec=, seen as WATCHDOG_USEC and WATCHDOG_PID) for as long as
// healthy returns true.
//
// The first time healthy returns false, Watchdog logs one error, sets the
// status line to say so and stops pinging for good: systemd then kills and
// restarts herald once WatchdogSec has passed without a ping. It does not
// resume if healthy turns true again, because a daemon whose loops wedged
// once is better restarted from its durable state than left flapping just
// below the watchdog's deadline. healthy is called from the Watchdog
// goroutine once per ping; if it blocks, pings stop too, which is the right
// outcome for a wedged daemon.
//
// Watchdog returns when ctx is done, at once when the watchdog is not
// enabled for this process (no WATCHDOG_USEC, or WATCHDOG_PID names another
// process), and after giving up as described above. A malformed
// WATCHDOG_USEC is logged and treated as "not enabled".
func (n *Notifier) Watchdog(ctx context.Context, healthy func() bool, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// unsetEnvironment false: the variables describe this process only
	// (WATCHDOG_PID), and leaving them makes Watchdog safe to call again.
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Error("watchdog: ignoring systemd watchdog settings", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	period := interval / 2
	log.Debug("watchdog: enabled", "timeout", interval, "ping_every", period)

	ticker := time.NewTicker(period)
	defer ticker.Stop()
	failing := false // the last ping could not be sent
	for {
		// A daemon shutting down may well report itself unhealthy; that is
		// no reason to log an error.
		if ctx.Err() != nil {
			return
		}
		if !healthy() {
			log.Error("watchdog: daemon unhealthy, no longer pinging; systemd will restart herald",
				"timeout", interval)
			if err := n.Status("unhealthy: watchdog pings stopped, waiting for systemd to restart herald"); err != nil {
				log.Warn("watchdog: cannot set status", "err", err)
			}
			return
		}
		// Log when sending starts or stops failing, not on every tick.
		if err := n.send(daemon.SdNotifyWatchdog); err != nil {
			if !failing {
				log.Warn("watchdog: ping failed", "err", err)
			}
			failing = true
		} else if failing {
			log.Info("watchdog: pings delivered again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
