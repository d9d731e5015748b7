// Package app wires herald's daemon together: spool, listeners, conversion,
// routing and the delivery queue. It is embeddable: a test starts and stops
// the whole daemon in-process with New and Run. Only app and cli see every
// other package.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/history"
	"herald/internal/httpapi"
	"herald/internal/metrics"
	"herald/internal/monitor"
	"herald/internal/noise"
	"herald/internal/safeio"
	"herald/internal/smtpd"
	"herald/internal/spool"
	"herald/internal/target"
)

// Options configures a daemon.
type Options struct {
	Paths  Paths
	Logger *slog.Logger
	// Listeners are sockets handed in by systemd socket activation, by
	// name ("smtp", "http"). When a name is absent herald binds the
	// addresses of herald.cfg itself.
	Listeners map[string][]net.Listener
	// ShimPaths are the paths of herald's own sendmail shim, for the loop
	// check of sendmail targets.
	ShimPaths []string
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// App is one running herald daemon.
type App struct {
	opt   Options
	log   *slog.Logger
	now   func() time.Time
	spool *spool.Spool
	queue *delivery.Queue
	// beforeEnqueue, when set (tests only), runs in the pick-up worker
	// just before an entry's event is queued.
	beforeEnqueue func(spool.Entry)
	metrics       *metrics.Metrics
	// monitors runs the heartbeats and usage watches (monitors.go).
	monitors *monitor.Engine
	noise    *noise.Engine
	history  *history.Log
	// firstPass is closed after the first ingest pass: noise releases wait
	// for it, so that a spool entry left by a crash is decided on before
	// its held group can be released (see internal/noise).
	firstPass chan struct{}

	// spoolEntries and spoolBytes are the spool's size at the last ingest
	// pass, for the metrics (a scrape does not walk the spool).
	spoolEntries atomic.Int64
	spoolBytes   atomic.Int64

	mu       sync.Mutex // guards settings and targets swaps (reload)
	settings atomic.Pointer[Settings]
	targets  atomic.Pointer[map[string]target.Target]

	ready     chan struct{}
	addrs     []net.Addr
	httpAddrs []net.Addr

	// ingestBusy is the UnixNano time the ingest loop last made progress
	// (started a pass or an entry), 0 while it waits for work: one entry
	// that never finishes is a wedged daemon.
	ingestBusy atomic.Int64
	// heal tracks spool entries that keep failing (rescan.go).
	heal healer
}

func logWarnings(log *slog.Logger, s *Settings) {
	for _, w := range s.Notify.Warnings {
		log.Warn("configuration warning", "problem", w.Error())
	}
}

// maxStall is how long the ingest pass or the delivery loop may be stuck
// with due work before the daemon reports itself unhealthy (and systemd's
// watchdog restarts it).
const maxStall = 2 * time.Minute

// Healthy reports whether the ingest and delivery loops are turning. It
// never blocks (the systemd watchdog calls it).
func (a *App) Healthy() bool {
	if t := a.ingestBusy.Load(); t != 0 && time.Since(time.Unix(0, t)) > maxStall {
		return false
	}
	return a.queue.Healthy(maxStall)
}

// Reload reads the whole configuration again and applies it when it is
// valid: new deliveries route and deliver with the new matchers and
// targets; queued deliveries stay queued and resolve their target by name
// at their next attempt. An invalid configuration is refused (the error is
// a config.Diagnostics) and the old one stays in force. Listen addresses
// take effect only at a restart.
func (a *App) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := LoadSettings(a.opt.Paths, a.opt.ShimPaths)
	if err != nil {
		return err
	}
	targets, warns, err := buildTargets(s, a.log, a.targetEnv())
	if err != nil {
		return err
	}
	s.Notify.Warnings = append(s.Notify.Warnings, warns...)
	logWarnings(a.log, s)
	old := a.Settings()
	if !slices.Equal(addrStrings(old.Daemon.SMTPListen), addrStrings(s.Daemon.SMTPListen)) {
		a.log.Warn("smtp-listen changed: the new addresses take effect at the next restart")
	}
	a.settings.Store(s)
	a.targets.Store(&targets)
	a.spool.SetLimits(spoolLimits(s.Daemon.Limits))
	a.monitors.SetHostname(s.Daemon.Hostname)
	if err := a.monitors.Configure(s.Notify.Monitors); err != nil {
		a.log.Error("monitor state not written at reload", "err", err)
	}
	a.log.Info("configuration reloaded", "targets", len(targets), "matchers", len(s.Notify.Matchers))
	a.reportBroken(targets)
	a.queue.Kick()
	return nil
}

// New loads the configuration, opens and recovers the spool and opens the
// delivery queue. It binds nothing yet: Run does.
func New(opt Options) (*App, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a := &App{opt: opt, log: opt.Logger, now: opt.Now, ready: make(chan struct{}), metrics: metrics.New(),
		firstPass: make(chan struct{})}
	a.heal.policy = defaultRescan()
	if a.now == nil {
		a.now = time.Now
	}
	// Lenient: one broken target section does not silence the others
	// (docs/proxmox-compat.md); reloads stay strict.
	s, err := loadSettings(opt.Paths, opt.ShimPaths, true)
	if err != nil {
		return nil, err
	}
	if err := opt.Paths.makeStateDir(); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	targets, warns, err := buildTargets(s, a.log, a.targetEnv())
	if err != nil {
		return nil, err
	}
	s.Notify.Warnings = append(s.Notify.Warnings, warns...)
	logWarnings(a.log, s)
	a.settings.Store(s)
	a.targets.Store(&targets)
	a.metrics.SetHostname(s.Daemon.Hostname)
	a.restoreLastEvents()

	sp, err := spool.OpenDir(s.SpoolDir(), a.log)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// The journal replays before recovery reads the directories
	// (docs/durability.md).
	if err := sp.OpenJournal(safeio.JournalOptions{Logger: a.log}); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	removed, quarantined, err := sp.Recover()
	if err != nil {
		return nil, fmt.Errorf("spool recovery: %w", err)
	}
	if removed+quarantined > 0 {
		a.log.Info("spool recovered", "partial_removed", removed, "quarantined", quarantined)
	}
	sp.SetLimits(spoolLimits(s.Daemon.Limits)) // diskcare.go
	a.spool = sp

	q, err := delivery.Open(delivery.Options{
		Dir:         filepath.Join(opt.Paths.StateDir, "queue"),
		Target:      a.lookupTarget,
		Logger:      a.log,
		Concurrency: s.Daemon.DeliveryConcurrency,
		MaxAge:      s.Daemon.MaxDeliveryAge,
		Now:         a.now,
		OnDead:      a.onDead,
		OnOutcome: func(d delivery.Delivery, _ error) {
			a.metrics.Delivery(d.Target, d.State)
			a.recordOutcome(d)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("delivery queue: %w", err)
	}
	a.queue = q
	if err := a.openMonitors(); err != nil {
		return nil, fmt.Errorf("monitors: %w", err)
	}
	a.openNoise()
	a.reportBroken(targets)
	a.metrics.SetSources(func() (int, int, int, time.Duration) {
		st := q.Stats()
		return st.Pending, st.Inflight, st.Dead, st.OldestPending
	}, func() (int, int64) {
		return int(a.spoolEntries.Load()), a.spoolBytes.Load()
	})
	return a, nil
}

func (a *App) lookupTarget(name string) (target.Target, bool) {
	m := a.targets.Load()
	t, ok := (*m)[name]
	return t, ok
}

// Settings returns the configuration in force.
func (a *App) Settings() *Settings { return a.settings.Load() }

// Queue gives access to the delivery queue (status, tests).
func (a *App) Queue() *delivery.Queue { return a.queue }

// Metrics returns the daemon's metrics (for `herald status` and tests).
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// Ready is closed once the spool is recovered and every listener is bound.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Addrs returns the bound SMTP addresses once Ready is closed.
func (a *App) Addrs() []net.Addr { return a.addrs }

// Run serves until ctx is cancelled, then shuts down: listeners stop
// accepting, sessions finish, in-flight deliveries finish or stay queued.
func (a *App) Run(ctx context.Context) error {
	s := a.Settings()
	ls := a.opt.Listeners["smtp"]
	if ls == nil {
		var err error
		ls, err = smtpd.ListenLoopback(addrStrings(s.Daemon.SMTPListen))
		if err != nil {
			return fmt.Errorf("smtp listen: %w", err)
		}
	} else {
		for i, l := range ls {
			ls[i] = smtpd.WrapListener(l)
		}
	}
	srv := smtpd.New(a.spool, smtpd.Options{
		Hostname:        s.Daemon.MailName, // HELO name and the domain of bare addresses
		MaxMessageSize:  s.Daemon.MaxMessageSize,
		MaxRecipients:   s.Daemon.MaxRecipients,
		MaxHeaderSize:   s.Daemon.MaxHeaderSize,
		MaxHeaderFields: s.Daemon.MaxHeaderFields,
		ReadTimeout:     s.Daemon.SMTPTimeout,
		WriteTimeout:    s.Daemon.SMTPTimeout,
		Allow:           s.Daemon.SMTPAllow,
		Logger:          a.log,
		OnAccepted:      func(string) { a.metrics.Accepted("smtp") },
		// Limits (fds.go, docs/limits.md).
		MaxSessions:          a.smtpSessionCap(s.Daemon.Limits.SMTPMaxSessions, s.Daemon.Limits.FDReserve),
		MaxSessionsPerClient: s.Daemon.Limits.SMTPMaxSessionsPerClient,
		SessionTime:          s.Daemon.Limits.SMTPSessionTime,
		MailsPerMinute:       s.Daemon.Limits.SMTPMailsPerMinute,
	})
	httpLs := a.opt.Listeners["http"]
	if httpLs == nil {
		var err error
		httpLs, err = listenTCP(s.Daemon.HTTPListen)
		if err != nil {
			closeAll(ls)
			return fmt.Errorf("http listen: %w", err)
		}
	}
	api := httpapi.New(a.spool, httpapi.Options{
		Metrics:  a.metrics,
		Logger:   a.log,
		Hostname: s.Daemon.Hostname,
		Allow:    s.Daemon.SMTPAllow,
		Hosts:    s.Daemon.Limits.HTTPHosts,
		Now:      a.now,
		// Pushes feed heartbeats by token; /api/v1/monitors lists them.
		PushMonitor: a.pushMonitor,
		Monitors:    func() any { return a.monitors.List() },
		Healthy:     a.health, // rescan.go
		Web:         a.webHandler(),
	})
	for _, l := range ls {
		a.addrs = append(a.addrs, l.Addr())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(ls)+len(httpLs)+2)
	for _, l := range ls {
		wg.Add(1)
		go func(l net.Listener) {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("smtp on %s: %w", l.Addr(), err)
			}
		}(l)
	}
	for _, l := range httpLs {
		a.httpAddrs = append(a.httpAddrs, l.Addr())
		wg.Add(1)
		go func(l net.Listener) {
			defer wg.Done()
			if err := api.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("http on %s: %w", l.Addr(), err)
			}
		}(l)
	}
	wake, err := a.spool.Watch(ctx)
	if err != nil {
		return fmt.Errorf("spool watch: %w", err)
	}
	wg.Add(4)
	go func() {
		defer wg.Done()
		a.monitors.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		select {
		case <-a.firstPass:
			a.noise.Run(ctx)
		case <-ctx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		if err := a.queue.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("delivery: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		a.ingestLoop(ctx, wake)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.fleetLoop(ctx)
	}()
	stopControl, err := a.serveControl(ctx)
	if err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("control socket: %w", err)
	}
	defer stopControl()
	stopMailq, err := a.serveMailq()
	if err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("mailq socket: %w", err)
	}
	defer stopMailq()
	defer a.serveSubmit()() // submit.go
	a.logRelayMode()
	a.log.Info("herald ready", "smtp", addrList(a.addrs), "http", addrList(a.httpAddrs), "state", a.opt.Paths.StateDir,
		"targets", len(*a.targets.Load()), "embedded", a.opt.Paths.Embedded)
	close(a.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("smtp shutdown", "err", err)
	}
	if err := api.Shutdown(sctx); err != nil {
		a.log.Warn("http shutdown", "err", err)
	}
	wg.Wait()
	if err := a.history.Close(); err != nil {
		a.log.Warn("history close", "err", err)
	}
	// Checkpoint the journals: a clean stop leaves nothing to replay.
	if err := a.spool.Close(); err != nil {
		a.log.Warn("spool close", "err", err)
	}
	if err := a.queue.Close(); err != nil {
		a.log.Warn("queue close", "err", err)
	}
	a.log.Info("herald stopped")
	return runErr
}

// listenTCP binds each address (the HTTP API; loopback by configuration).
func listenTCP(aps []netip.AddrPort) ([]net.Listener, error) {
	var ls []net.Listener
	for _, ap := range aps {
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			closeAll(ls)
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

func addrStrings(aps []netip.AddrPort) []string {
	out := make([]string, len(aps))
	for i, ap := range aps {
		out[i] = ap.String()
	}
	return out
}

func addrList(as []net.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// route is the daemon's routing step for one event (ingest and the
// delivery-failed path): the targets that matched, minus exclude.
func (a *App) route(ev *event.Event, exclude string) []string {
	return a.routeWith(ev, exclude, false)
}

// routeWith is route for a mail that may have been relayed to all of its
// recipients (Settings.RouteConfig).
func (a *App) routeWith(ev *event.Event, exclude string, relayedOnly bool) []string {
	// The compiled router, without the explanation: herald explain
	// shows what Route decides, and TestTargetsAgreeWithRoute in
	// internal/router holds the two to the same targets.
	out := a.Settings().router(relayedOnly).Targets([]string{}, ev, ev.Timestamp)
	return slices.DeleteFunc(out, func(t string) bool { return t == exclude })
}
