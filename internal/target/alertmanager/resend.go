package alertmanager

// This file holds the re-sending of firing heartbeat alerts, which keeps
// them firing in Alertmanager while their monitor is down.

import (
	"context"

	"herald/internal/target"
	"herald/internal/target/httpsend"
)

// Resend posts every firing heartbeat alert to every member again, at most
// once per resend interval (the daemon calls it often). A member that
// fails is logged when its state changes; the next re-send tries again.
func (t *Target) Resend(ctx context.Context) {
	if t.store == nil {
		return
	}
	now := t.now()
	t.mu.Lock()
	due := now.Sub(t.lastResend) >= t.resendInterval
	if due {
		t.lastResend = now
	}
	t.mu.Unlock()
	if !due {
		return
	}
	t.hbMu.Lock()
	defer t.hbMu.Unlock()
	var firing []Alert
	if err := t.store.view(func(st *hbState) {
		for _, rec := range st.Alerts {
			if rec.Status == stateFiring {
				firing = append(firing, rec.Alert)
			}
		}
	}); err != nil {
		t.log.Error("cannot re-send firing heartbeat alerts", "err", err)
		return
	}
	if len(firing) == 0 {
		return
	}
	errs := t.postAll(ctx, t.members, firing)
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, err := range errs {
		m := t.members[i]
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg == t.resendErr[m.url] {
			continue
		}
		t.resendErr[m.url] = msg
		where := httpsend.Mask(target.RedactURL(m.url), t.masked()...)
		if err != nil {
			t.log.Warn("re-sending firing heartbeat alerts failed", "member", where, "alerts", len(firing), "err", msg)
		} else {
			t.log.Info("re-sending firing heartbeat alerts works again", "member", where, "alerts", len(firing))
		}
	}
}
