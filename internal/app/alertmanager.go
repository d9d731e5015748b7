package app

import (
	"context"
	"net/netip"
	"net/url"
	"path/filepath"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/alertmanager"
)

// targetEnv is what the running daemon lends the targets it builds; the
// zero value is for `herald check` and `herald test`, which have no queue.
type targetEnv struct {
	// stateDir is STATE, for targets that keep state (alertmanager's
	// heartbeat alerts); "" when not the daemon.
	stateDir string
	// enqueue durably queues more deliveries of an event that is in the
	// queue (the members an alertmanager delivery still owes).
	enqueue func(ev *event.Event, targets []string) error
}

// targetEnv returns the daemon's environment for its targets. The queue
// is opened after the targets are built, so enqueue looks it up late.
func (a *App) targetEnv() targetEnv {
	return targetEnv{
		stateDir: a.opt.Paths.StateDir,
		enqueue: func(ev *event.Event, targets []string) error {
			return a.queue.Enqueue(ev, targets)
		},
	}
}

// alertmanager builds an alertmanager target. Its heartbeat state lives in
// STATE/alertmanager/NAME (docs/alertmanager.md).
func (b builder) alertmanager(sec *config.Section) (target.Target, error) {
	opt := alertmanager.Options{Name: sec.Name, URLs: sec.List("url"), Log: b.log}
	if fields := sec.List("label-field"); len(fields) > 0 {
		opt.LabelFields = fields
	}
	for key, dst := range map[string]*time.Duration{"resolve-after": &opt.ResolveAfter,
		"resend-interval": &opt.ResendInterval, "timeout": &opt.Timeout} {
		if v, ok := sec.Get(key); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, err
			}
			*dst = d
		}
	}
	opt.CAFile, _ = sec.Get("ca-file")
	opt.Username, _ = sec.Get("username")
	if pw, ok := sec.Secret("password"); ok {
		opt.Password = pw.Reveal()
	}
	if tok, ok := sec.Secret("token"); ok {
		opt.Token = tok.Reveal()
	}
	if b.env.stateDir != "" {
		opt.StateDir = filepath.Join(b.env.stateDir, "alertmanager", sec.Name)
	}
	if b.env.enqueue != nil {
		opt.Owe = b.env.enqueue
	}
	opt.EventURL = statusPageEventURL(b.s.Daemon.HTTPListen)
	return alertmanager.New(opt)
}

// memberTargets returns the per-member targets of an alertmanager target
// (nil for any other): the queue delivers what a member is owed to them.
func memberTargets(t target.Target) map[string]target.Target {
	if m, ok := unwrapTarget(t).(interface {
		Members() map[string]target.Target
	}); ok {
		return m.Members()
	}
	return nil
}

func unwrapTarget(t target.Target) target.Target {
	for {
		u, ok := t.(interface{ Unwrap() target.Target })
		if !ok {
			return t
		}
		t = u.Unwrap()
	}
}

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
		r, ok := unwrapTarget(t).(interface{ Resend(context.Context) })
		if !ok {
			continue
		}
		if sec := notify.Target(name); sec == nil || sec.Disabled() {
			continue
		}
		r.Resend(ctx)
	}
}

// statusPageEventURL links an alert to its event on herald's status page
// (generatorURL): the first HTTP listener's /event/ID. The page is on
// loopback, so the link works on the host itself or through an SSH tunnel
// (README, "History and the status page"); it asks for the page's token.
// Without an HTTP listener there is no page and no link.
func statusPageEventURL(listen []netip.AddrPort) func(*event.Event) string {
	if len(listen) == 0 {
		return nil
	}
	base := "http://" + listen[0].String() + "/event/"
	return func(ev *event.Event) string { return base + url.PathEscape(ev.ID) }
}
