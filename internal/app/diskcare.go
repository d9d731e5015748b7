package app

import (
	"time"

	"herald/internal/config"
	"herald/internal/spool"
)

// spoolCareEvery is how often the ingest loop reclaims partial spool files
// of killed writers and prunes quarantine/ (docs/limits.md); it runs at
// least at every idle rescan.
const spoolCareEvery = time.Minute

func spoolLimits(l config.Limits) spool.Limits {
	return spool.Limits{MinFree: l.SpoolMinFree, MaxPerUID: l.SpoolMaxPerUID}
}

// careForSpool runs the spool's upkeep when it is due. Only the ingest
// loop calls it.
func (a *App) careForSpool(now time.Time) {
	if !a.heal.lastCare.IsZero() && now.Sub(a.heal.lastCare) < spoolCareEvery {
		return
	}
	a.heal.lastCare = now
	if n := a.spool.ReclaimPartials(); n > 0 {
		a.log.Info("spool: partial files of killed writers reclaimed", "files", n)
	}
	lim := a.Settings().Daemon.Limits
	if _, err := a.spool.PruneQuarantine(lim.QuarantineMaxAge, lim.QuarantineMaxSize, now); err != nil {
		a.log.Warn("spool: pruning the quarantine", "err", err)
	}
}
