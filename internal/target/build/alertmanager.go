package build

import (
	"net/netip"
	"net/url"
	"path/filepath"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/alertmanager"
)

// alertmanager builds the alertmanager target name. Its heartbeat state
// lives in STATE/alertmanager/NAME (docs/alertmanager.md).
func (b builder) alertmanager(name string, c config.AlertmanagerTarget) (target.Target, error) {
	opt := alertmanager.Options{Name: name, URLs: c.URLs, LabelFields: c.LabelFields, Log: b.log,
		ResolveAfter: c.ResolveAfter, ResendInterval: c.ResendInterval, Timeout: c.Timeout,
		CAFile: c.CAFile, Username: c.Username, Password: c.Password, Token: c.Token}
	if b.env.StateDir != "" {
		opt.StateDir = filepath.Join(b.env.StateDir, "alertmanager", name)
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
