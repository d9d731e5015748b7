package app

import (
	"log/slog"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/build"
)

// targetInput is what the target factory (internal/target/build) reads of
// the settings.
func (s *Settings) targetInput() build.Input {
	return build.Input{Notify: s.Notify, Daemon: s.Daemon, Datacenter: s.Datacenter, ShimPaths: s.ShimPaths,
		ConfigDir: s.Paths.ConfigDir, StateDir: s.Paths.StateDir, Embedded: s.Paths.Embedded}
}

// buildTargets makes the daemon's targets from s (build.Targets).
func buildTargets(s *Settings, log *slog.Logger, env build.Env) (map[string]target.Target, config.Diagnostics, error) {
	return build.Targets(s.targetInput(), log, env)
}

// targetEnv returns the daemon's environment for its targets. The queue
// is opened after the targets are built, so Enqueue looks it up late.
func (a *App) targetEnv() build.Env {
	return build.Env{
		StateDir: a.opt.Paths.StateDir,
		Enqueue: func(ev *event.Event, targets []string) error {
			return a.queue.Enqueue(ev, targets)
		},
	}
}

// CheckTargets builds every configured target without sending anything
// (build.Check), for `herald check`.
func CheckTargets(s *Settings) (config.Diagnostics, error) { return build.Check(s.targetInput()) }

// BuildTarget builds one named target, disabled or not (build.Target), for
// `herald test`.
func BuildTarget(s *Settings, name string) (target.Target, error) {
	return build.Target(s.targetInput(), name)
}

// ExplainRecipients resolves whom ev would be mailed to by each named mail
// target (build.ExplainRecipients), for `herald explain`.
func ExplainRecipients(s *Settings, names []string, ev *event.Event) (map[string]any, error) {
	return build.ExplainRecipients(s.targetInput(), names, ev)
}
