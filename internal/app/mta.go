package app

import (
	"fmt"
	"strings"

	"herald/internal/config"
	"herald/internal/control"
	"herald/internal/event"
	"herald/internal/mailroute"
)

// This file holds what makes the daemon behave like the MTA it replaces
// (docs/mta.md): the mail name, local versus remote recipients, and the
// built-in relay target for mail addressed to remote recipients.

// resolveMailName fills in the mail name once per load: mail-name, else
// /etc/mailname, else the FQDN.
func resolveMailName(d *config.Daemon) {
	if d.MailName == "" {
		d.MailName = d.ResolvedMailName()
	}
}

// LocalDomains are the domains mail is delivered to on this host.
func (s *Settings) LocalDomains() mailroute.Local {
	return mailroute.NewLocal(s.Daemon.Hostname, s.Daemon.MailName)
}

// MailDecision says where a mail with these envelope recipients goes.
func (s *Settings) MailDecision(rcpts []string) mailroute.Decision {
	return s.LocalDomains().Decide(rcpts, s.Daemon.Relay != "")
}

// relayed reports whether the mail of ev goes to remote recipients through
// the relay (besides being an event), and whether it goes to all of its
// recipients so. A mail that has passed too many hops is looping between
// herald and another MTA: it stays a notification.
func (a *App) relayed(ev *event.Event) (relayed, only bool) {
	if ev.Mail == nil {
		return false, false
	}
	d := a.Settings().MailDecision(ev.Mail.Recipients)
	if !d.Relayed {
		return false, false
	}
	if n := mailroute.Hops(ev.Mail.Raw); n >= mailroute.MaxHops {
		a.log.Warn("mail not relayed: it has passed too many hops (a mail loop?); it is a notification only",
			"event_id", ev.ID, "received_headers", n, "limit", mailroute.MaxHops)
		return false, false
	}
	return true, relayedOnly(d)
}

// logRelayMode says once at start-up what happens to mail for remote
// recipients.
func (a *App) logRelayMode() {
	d := a.Settings().Daemon
	if d.Relay == "" {
		a.log.Info(noRelayNote, "mail_name", d.MailName)
		return
	}
	a.log.Info("mail for remote recipients is relayed as-is", "relay", d.Relay, "mode", d.RelayMode, "mail_name", d.MailName)
}

// noRelayNote is said at start-up and by `herald status` when herald.cfg
// sets no relay.
const noRelayNote = "no relay set: mail for remote recipients is treated as a notification (set relay in herald.cfg to deliver it)"

// status is what the control socket answers for `herald status`.
func (a *App) status() control.Status {
	st := control.Status{Snapshot: a.metrics.Snapshot(), Healthy: a.Healthy(), SMTP: addrList(a.addrs), HTTP: addrList(a.httpAddrs)}
	if a.Settings().Daemon.Relay == "" {
		st.Notes = append(st.Notes, noRelayNote)
	}
	return st
}

// RouteConfig is the configuration an event is routed with. A mail that is
// relayed to every one of its recipients reached them: it is an event for
// the admin's own matchers only, not for the built-in catch-all matchers
// (default-matcher as Proxmox ships it), which would otherwise copy every
// mail a user sends to root. note says so ("" when nothing was left out).
// Nothing else changes: the loaded configuration is not modified.
func (s *Settings) RouteConfig(relayedOnly bool) (cfg *config.Config, note string) {
	if !relayedOnly {
		return s.Notify, ""
	}
	var kept []*config.Matcher
	var left []string
	for _, m := range s.Notify.Matchers {
		if m.Origin == config.OriginBuiltin {
			left = append(left, m.Name)
			continue
		}
		kept = append(kept, m)
	}
	if len(left) == 0 {
		return s.Notify, ""
	}
	cp := *s.Notify
	cp.Matchers = kept
	return &cp, fmt.Sprintf("the built-in %s does not apply: the mail was relayed to all of its recipients", strings.Join(left, ", "))
}

// relayedOnly reports whether a mail decision sends the mail to every
// recipient through the relay.
func relayedOnly(d mailroute.Decision) bool { return d.Relayed && len(d.Local) == 0 }
