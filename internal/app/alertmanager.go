package app

import (
	"context"
	"time"

	"herald/internal/target/build"
)

// resendTick is how often the daemon offers the alertmanager targets to
// re-send their firing heartbeat alerts; each target keeps to its own
// resend-interval.
const resendTick = time.Second

// resendOnce keeps heartbeat alerts firing in Alertmanager while their
// monitor is down: Alertmanager resolves an alert that is not re-sent
// within its resolve_timeout. A disabled target is left alone.
func (a *App) resendOnce(ctx context.Context) {
	notify := a.Settings().Notify
	for name, t := range *a.targets.Load() {
		r, ok := build.Unwrap(t).(interface{ Resend(context.Context) })
		if !ok {
			continue
		}
		if sec := notify.Target(name); sec == nil || sec.Disabled() {
			continue
		}
		r.Resend(ctx)
	}
}
