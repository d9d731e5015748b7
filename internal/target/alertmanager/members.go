package alertmanager

// This file holds how an alert reaches the cluster: posted to every member
// at once, the outcomes combined, and the per-member targets through which
// the queue retries a member that failed.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/httpsend"
)

// postAll posts alerts to each member in parallel; errs[i] is member i's
// outcome.
func (t *Target) postAll(ctx context.Context, ms []member, alerts []Alert) []error {
	body, err := json.Marshal(alerts)
	errs := make([]error, len(ms))
	if err != nil {
		for i := range errs {
			errs[i] = target.Permanent(fmt.Errorf("alertmanager: encoding alerts: %w", err))
		}
		return errs
	}
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.post(ctx, m, body)
		}()
	}
	wg.Wait()
	return errs
}

// post sends one request to one member and classifies the outcome.
func (t *Target) post(ctx context.Context, m member, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint, bytes.NewReader(body))
	if err != nil {
		return target.Permanent(httpsend.Scrubbed(fmt.Errorf("alertmanager %s: %w",
			target.RedactURL(m.url), err), t.masked()...))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", httpsend.UserAgent)
	switch {
	case !t.token.IsEmpty():
		req.Header.Set("Authorization", "Bearer "+t.token.Reveal())
	case t.username != "":
		req.SetBasicAuth(t.username, t.password.Reveal())
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return httpsend.Classify("alertmanager", m.url, 0, nil, err, "", t.masked()...)
	}
	snippet := httpsend.OneLine(httpsend.Mask(httpsend.ReadSnippet(resp.Body), t.masked()...))
	return httpsend.Classify("alertmanager", m.url, resp.StatusCode, resp.Header, nil, snippet, t.masked()...)
}

// combine makes one error of every member's failure: temporary when any
// member's was (the cluster may be back soon), waiting at least as long as
// the longest Retry-After.
func combine(errs []error) error {
	var msgs, replies []string
	e := &target.Error{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		msgs = append(msgs, err.Error())
		if r := target.Reply(err); r != "" {
			replies = append(replies, r)
		}
		if target.IsTemporary(err) {
			e.Temp = true
			e.RetryAfter = max(e.RetryAfter, target.RetryAfter(err))
		}
	}
	e.Err = errors.New("no alertmanager member accepted the alert: " + strings.Join(msgs, "; "))
	e.Reply = strings.Join(replies, "; ")
	return e
}

// memberTarget delivers what one member is owed: the same alert the
// target built, to that member only. For a heartbeat it sends the alert's
// current state instead (a down superseded by an up is not sent again).
type memberTarget struct {
	t *Target
	m member
}

// IgnoresMail: a member never reads the raw mail either.
func (mt *memberTarget) IgnoresMail() bool { return true }

// String names the member without credentials.
func (mt *memberTarget) String() string {
	return "alertmanager " + mt.t.name + " member " + httpsend.Mask(target.RedactURL(mt.m.url), mt.t.masked()...)
}

// Deliver posts ev's alert to the member.
func (mt *memberTarget) Deliver(ctx context.Context, ev *event.Event) error {
	t := mt.t
	if _, _, ok := isHeartbeat(ev); ok {
		t.hbMu.Lock()
		defer t.hbMu.Unlock()
	}
	now := t.now()
	a, skip, err := t.memberAlert(ev, now)
	if err != nil {
		return target.Temporary(err, 0)
	}
	if skip != "" {
		t.log.Info("owed alert not sent", "event_id", ev.ID,
			"member", httpsend.Mask(target.RedactURL(mt.m.url), t.masked()...), "reason", skip)
		return nil
	}
	return t.postAll(ctx, []member{mt.m}, []Alert{a})[0]
}

// memberAlert is the alert a member is owed for ev now.
func (t *Target) memberAlert(ev *event.Event, now time.Time) (a Alert, skip string, err error) {
	monitor, status, ok := isHeartbeat(ev)
	if !ok || t.store == nil {
		return t.alert(ev, now, ok), "", nil
	}
	key := heartbeatKey(ev.Fields[event.FieldHostname], monitor)
	err = t.store.view(func(st *hbState) {
		rec := st.Alerts[key]
		switch {
		case rec == nil:
			skip = "the heartbeat alert is no longer known"
		case status == statusDown && rec.Status != stateFiring:
			skip = "the heartbeat alert was resolved since"
		case status == statusUp && rec.Status != stateResolved:
			skip = "the monitor went down again since"
		default:
			a = rec.Alert
		}
	})
	return a, skip, err
}
