package build

import (
	"net/netip"
	"net/url"
	"path/filepath"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/alertmanager"
)

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
	opt.Password, _ = sec.Secret("password")
	opt.Token, _ = sec.Secret("token")
	if b.env.StateDir != "" {
		opt.StateDir = filepath.Join(b.env.StateDir, "alertmanager", sec.Name)
	}
	if b.env.Enqueue != nil {
		opt.Owe = b.env.Enqueue
	}
	opt.EventURL = statusPageEventURL(b.in.Daemon.HTTPListen)
	return alertmanager.New(opt)
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
