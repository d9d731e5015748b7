// Package alertmanager holds the alertmanager target: it feeds events to
// Prometheus Alertmanager (POST /api/v2/alerts) as Prometheus itself does,
// so that a fleet of herald hosts shares one Alertmanager (HA pair) for
// deduplication, grouping, silences, inhibition and routing.
//
// docs/alertmanager.md describes the contract: the alert shape (labels from
// the event's type, severity, host name and fields; summary and description
// from title and body), how one-shot events resolve (resolve-after) and how
// heartbeat events fire and resolve, and what happens when only some
// members of an HA cluster answer:
//
//   - every member gets every alert, as Prometheus sends it to each;
//   - a delivery succeeds when at least one member accepted the alert; the
//     members that failed are owed it, and Options.Owe hands them to the
//     durable delivery queue as deliveries of their own (MemberTarget
//     names them), so their retries survive a restart;
//   - a heartbeat down alert is kept in a state file (state.go) and posted
//     again by Resend while it fires, so that Alertmanager's
//     resolve_timeout never resolves it; the matching up event resolves it
//     with the same labels.
//
// Credentials (basic auth password, bearer token) never appear in errors,
// logs or String: they are masked in everything the target reports.
package alertmanager

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/target"
	"herald/internal/target/httpsend"
)

// Defaults.
const (
	// DefaultTimeout bounds one request to one member.
	DefaultTimeout = 10 * time.Second
	// DefaultResendInterval is how often a firing heartbeat alert is posted
	// again: Prometheus's own resend delay, well inside Alertmanager's
	// default resolve_timeout of 5 minutes.
	DefaultResendInterval = time.Minute
)

// apiPath is Alertmanager's alert ingestion endpoint (API v2).
const apiPath = "/api/v2/alerts"

// memberInfix joins a target's name and a member's hash in MemberTarget.
const memberInfix = "--member-"

// MemberTarget is the delivery-queue name of what is owed to one member
// (by its URL) of the alertmanager target name. It is longer than any
// section name can be (32 characters), so it never names a configured
// target, and it stays the same across restarts and reloads as long as the
// URL does.
func MemberTarget(name, memberURL string) string {
	sum := sha256.Sum256([]byte(memberURL))
	return name + memberInfix + hex.EncodeToString(sum[:12])
}

// Options configure an alertmanager target.
type Options struct {
	// Name is the target's name (logs, member names).
	Name string
	// URLs are the members' base URLs (http or https, optionally with a
	// path prefix for an Alertmanager behind a reverse proxy).
	URLs []string
	// LabelFields, when not nil, limits the fields that become labels
	// (alertname, severity and hostname are always labels).
	LabelFields []string
	// ResolveAfter sets endsAt of one-shot alerts that far after their
	// delivery; 0 leaves endsAt out, so Alertmanager's resolve_timeout
	// applies.
	ResolveAfter time.Duration
	// ResendInterval is how often firing heartbeat alerts are posted again
	// (default DefaultResendInterval).
	ResendInterval time.Duration
	// Username and Password are HTTP basic auth; Token a bearer token. At
	// most one of the two may be set.
	Username        string
	Password, Token config.Secret
	// CAFile, when set, is a PEM file of the CAs that sign the members'
	// certificates (instead of the system's).
	CAFile string
	// Timeout bounds one request (default DefaultTimeout).
	Timeout time.Duration
	// StateDir holds the heartbeat state; empty means heartbeat alerts are
	// posted but not remembered (`herald test`).
	StateDir string
	// Owe durably queues deliveries of ev to the member targets named (see
	// MemberTarget). Nil means a member that fails fails the delivery.
	Owe func(ev *event.Event, memberTargets []string) error
	// EventURL returns the generatorURL of an event's alert (the event on
	// herald's status page); nil or "" leaves generatorURL out.
	EventURL func(ev *event.Event) string
	// Client sends the requests (tests); nil builds one from Timeout and
	// CAFile.
	Client *http.Client
	Log    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// String describes the options with credentials hidden.
func (o Options) String() string {
	urls := make([]string, len(o.URLs))
	for i, u := range o.URLs {
		urls[i] = httpsend.Mask(target.RedactURL(u), o.Password.Reveal(), o.Token.Reveal())
	}
	return fmt.Sprintf("alertmanager{%s urls=%s basic-auth=%t token=%t}", o.Name, strings.Join(urls, ","),
		o.Username != "", !o.Token.IsEmpty())
}

// GoString keeps %#v from printing secrets.
func (o Options) GoString() string { return o.String() }

// LogValue keeps slog from printing secrets.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// Target is an alertmanager target. It is safe for concurrent use.
type Target struct {
	name           string
	members        []member
	only           []string
	resolveAfter   time.Duration
	resendInterval time.Duration
	username       string
	password       config.Secret
	token          config.Secret
	client         *http.Client
	store          *store
	owe            func(*event.Event, []string) error
	eventURL       func(*event.Event) string
	log            *slog.Logger
	now            func() time.Time

	// hbMu serialises what reads the heartbeat state and posts from it
	// (heartbeat deliveries, owed heartbeat deliveries, re-sends), so that a
	// re-send of a snapshot taken before an up cannot reach a member after
	// the up's resolution and fire the alert again.
	hbMu sync.Mutex

	mu         sync.Mutex
	lastResend time.Time
	resendErr  map[string]string // member URL → last re-send error, for state-change logging
}

type member struct {
	url      string // as configured
	endpoint string // url + apiPath
	target   string // MemberTarget(name, url)
}

// masked reveals the credentials for masking them in what the target
// reports.
func (t *Target) masked() []string {
	var out []string
	for _, s := range []config.Secret{t.password, t.token} {
		if !s.IsEmpty() {
			out = append(out, s.Reveal())
		}
	}
	return out
}

// New checks the options and builds the target. Its errors never contain
// a credential.
func New(opt Options) (*Target, error) {
	t := &Target{
		name: opt.Name, only: opt.LabelFields, resolveAfter: opt.ResolveAfter,
		resendInterval: opt.ResendInterval, username: opt.Username, password: opt.Password,
		token: opt.Token, client: opt.Client, owe: opt.Owe, eventURL: opt.EventURL,
		log: opt.Log, now: opt.Now, resendErr: map[string]string{},
	}
	if err := t.init(opt); err != nil {
		return nil, httpsend.Scrubbed(fmt.Errorf("alertmanager: %w", err), t.masked()...)
	}
	return t, nil
}

func (t *Target) init(opt Options) error {
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("target", t.name)
	if t.now == nil {
		t.now = time.Now
	}
	if t.resendInterval <= 0 {
		t.resendInterval = DefaultResendInterval
	}
	if t.resolveAfter < 0 {
		return errors.New("resolve-after must not be negative")
	}
	if len(opt.URLs) == 0 {
		return errors.New("no url")
	}
	if !opt.Token.IsEmpty() && (opt.Username != "" || !opt.Password.IsEmpty()) {
		return errors.New("set either username/password (basic auth) or token (bearer), not both")
	}
	if !opt.Password.IsEmpty() && opt.Username == "" {
		return errors.New("a password needs a username")
	}
	seen := map[string]bool{}
	for _, raw := range opt.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("url %s is not an http(s) base URL without query", target.RedactURL(raw))
		}
		if seen[raw] {
			return fmt.Errorf("url %s is given twice", target.RedactURL(raw))
		}
		seen[raw] = true
		t.members = append(t.members, member{url: raw,
			endpoint: strings.TrimSuffix(raw, "/") + apiPath, target: MemberTarget(t.name, raw)})
	}
	if opt.StateDir != "" {
		t.store = &store{dir: opt.StateDir, log: t.log}
	}
	if t.client == nil {
		timeout := opt.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		c := httpsend.NewClient(nil, timeout)
		if opt.CAFile != "" {
			pem, err := os.ReadFile(opt.CAFile)
			if err != nil {
				return fmt.Errorf("ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("ca-file %s holds no PEM certificate", opt.CAFile)
			}
			c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		t.client = c
	}
	return nil
}

// String names the target and its members without credentials.
func (t *Target) String() string {
	urls := make([]string, len(t.members))
	for i, m := range t.members {
		urls[i] = httpsend.Mask(target.RedactURL(m.url), t.masked()...)
	}
	return "alertmanager " + t.name + " " + strings.Join(urls, ",")
}

// GoString keeps %#v from printing secrets.
func (t *Target) GoString() string { return t.String() }

// LogValue keeps slog from printing secrets.
func (t *Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// IgnoresMail tells the delivery queue that this target never reads the raw
// mail (target.MailBlind).
func (t *Target) IgnoresMail() bool { return true }

// Members returns one target per member, by its MemberTarget name: the
// delivery queue resolves owed deliveries through them.
func (t *Target) Members() map[string]target.Target {
	out := make(map[string]target.Target, len(t.members))
	for _, m := range t.members {
		out[m.target] = &memberTarget{t: t, m: m}
	}
	return out
}

// Deliver posts ev's alert to every member. It succeeds when at least one
// accepted it; the others are handed to Options.Owe. With no member
// accepting, the error is temporary when any member's failure was.
func (t *Target) Deliver(ctx context.Context, ev *event.Event) error {
	if _, _, ok := isHeartbeat(ev); ok {
		t.hbMu.Lock()
		defer t.hbMu.Unlock()
	}
	now := t.now()
	alert, hb, skip, err := t.prepare(ev, now)
	if err != nil {
		return target.Temporary(err, 0)
	}
	log := t.log.With("event_id", ev.ID)
	if skip != "" {
		log.Info("alert not sent", "reason", skip)
		return nil
	}
	batch := []Alert{alert}
	if hb != nil && hb.superseded != nil {
		batch = append(batch, *hb.superseded)
	}
	errs := t.postAll(ctx, t.members, batch)
	var accepted int
	var owed []string
	for i, err := range errs {
		if err == nil {
			accepted++
			continue
		}
		owed = append(owed, t.members[i].target)
	}
	if accepted == 0 {
		return combine(errs)
	}
	if hb != nil && hb.resolve {
		if err := t.commitResolve(hb.key, ev, alert, now); err != nil {
			return target.Temporary(err, 0)
		}
	}
	if len(owed) == 0 {
		return nil
	}
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, err.Error())
			log.Warn("alertmanager member failed; it stays owed the alert",
				"member", httpsend.Mask(target.RedactURL(t.members[i].url), t.masked()...), "err", err.Error())
		}
	}
	if t.owe == nil {
		return target.Temporary(fmt.Errorf("alertmanager: %d of %d members accepted; failed: %s",
			accepted, len(t.members), strings.Join(failed, "; ")), 0)
	}
	if err := t.owe(ev, owed); err != nil {
		// Without the owed deliveries on disk the failed members would
		// never get the alert: retry the whole delivery (Alertmanager
		// merges the repeat into the alert it has).
		return target.Temporary(fmt.Errorf("alertmanager: cannot queue retries for %d failed members: %w", len(owed), err), 0)
	}
	return nil
}

// heartbeatInfo says what prepare decided for a heartbeat event.
type heartbeatInfo struct {
	key     string
	resolve bool
	// superseded is a firing alert of the same monitor whose labels the
	// new down changed (a different severity, say): it is resolved in the
	// same request rather than left to time out.
	superseded *Alert
}

// prepare builds ev's alert. For heartbeats it consults and updates the
// state: a down fires (recorded before it is sent), an up resolves the
// firing alert with its labels (recorded after it was sent); a transition
// older than the state's is skipped, as is an up with nothing firing.
// skip is the reason when nothing is to be sent.
func (t *Target) prepare(ev *event.Event, now time.Time) (a Alert, hb *heartbeatInfo, skip string, err error) {
	monitor, status, ok := isHeartbeat(ev)
	if !ok || t.store == nil {
		return t.alert(ev, now, ok), nil, "", nil
	}
	key := heartbeatKey(ev.Fields[event.FieldHostname], monitor)
	hb = &heartbeatInfo{key: key, resolve: status == statusUp}
	if status == statusDown {
		err = t.store.update(now, func(st *hbState) bool {
			rec := st.Alerts[key]
			if rec != nil && rec.EventTime.After(ev.Timestamp) {
				skip = "a newer heartbeat transition of this monitor was already sent"
				return false
			}
			fresh := t.alert(ev, now, true)
			if rec != nil && rec.Status == stateFiring {
				if sameLabels(rec.Alert.Labels, fresh.Labels) {
					fresh.StartsAt = rec.Alert.StartsAt // still the same outage
				} else {
					old := rec.Alert
					old.EndsAt = now
					hb.superseded = &old
				}
			}
			st.Alerts[key] = &hbAlert{Alert: fresh, Status: stateFiring, EventID: ev.ID, EventTime: ev.Timestamp, Changed: now}
			a = fresh
			return true
		})
		return a, hb, skip, err
	}
	err = t.store.view(func(st *hbState) {
		rec := st.Alerts[key]
		switch {
		case rec == nil:
			skip = "no heartbeat alert of this monitor is firing"
		case rec.EventTime.After(ev.Timestamp):
			skip = "a newer heartbeat transition of this monitor was already sent"
		case rec.Status == stateResolved:
			a = rec.Alert // a repeated delivery: resolve again, identically
		default:
			a = rec.Alert
			a.EndsAt = now
		}
	})
	return a, hb, skip, err
}

// commitResolve records that the heartbeat alert key was resolved by ev.
func (t *Target) commitResolve(key string, ev *event.Event, a Alert, now time.Time) error {
	return t.store.update(now, func(st *hbState) bool {
		rec := st.Alerts[key]
		if rec != nil && rec.EventTime.After(ev.Timestamp) {
			return false
		}
		st.Alerts[key] = &hbAlert{Alert: a, Status: stateResolved, EventID: ev.ID, EventTime: ev.Timestamp, Changed: now}
		return true
	})
}

// alert builds the alert of ev: firing forever for a heartbeat (re-sent
// while down), resolving resolve-after from now for a one-shot event.
func (t *Target) alert(ev *event.Event, now time.Time, heartbeat bool) Alert {
	a := Alert{Labels: Labels(ev, t.only), Annotations: Annotations(ev), StartsAt: ev.Timestamp}
	if a.StartsAt.IsZero() {
		a.StartsAt = now
	}
	if t.eventURL != nil {
		a.GeneratorURL = t.eventURL(ev)
	}
	_, status, _ := isHeartbeat(ev)
	switch {
	case heartbeat && status == statusUp:
		a.EndsAt = now
	case heartbeat:
	case t.resolveAfter > 0:
		// From delivery, not from the event: an event delivered late after
		// an outage still fires for resolve-after.
		a.EndsAt = maxTime(a.StartsAt, now).Add(t.resolveAfter)
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
