package noise

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"herald/internal/event"
)

// retryRelease is how soon a release that could not be queued is tried
// again.
const retryRelease = 30 * time.Second

// Release queues everything that is due now: summaries of dedup windows
// that ended with repeats, and held deliveries whose quiet hours ended or
// whose digest time came. It returns when the next release is due (zero:
// nothing is held). A release that fails stays held and is retried.
func (e *Engine) Release() time.Time {
	if e.opt.ReadOnly {
		return time.Time{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, w := range e.windows {
		if now.Before(w.End) {
			later(w.End)
			continue
		}
		if err := e.releaseWindow(w); err != nil {
			e.log.Error("cannot release dedup summary; will retry", "rule", w.Rule, "target", w.Target, "err", err)
			later(now.Add(retryRelease))
		}
	}
	groups := map[string][]string{}
	for name, h := range e.held {
		if now.Before(h.Release) {
			later(h.Release)
			continue
		}
		g := h.group()
		groups[g] = append(groups[g], name)
	}
	for g, names := range groups {
		if err := e.releaseGroup(g, names); err != nil {
			e.log.Error("cannot release held deliveries; will retry", "group", g, "held", len(names), "err", err)
			later(now.Add(retryRelease))
		}
	}
	return next
}

// releaseWindow ends a dedup window: its summary is queued when repeats
// were counted, then the window is forgotten. Caller holds mu.
func (e *Engine) releaseWindow(w *window) error {
	if w.Count > 0 {
		ev := summary(w)
		if err := e.opt.Queue.Enqueue(ev, []string{w.Target}); err != nil {
			return err
		}
		e.log.Info("dedup summary queued", "event_id", ev.ID, "rule", w.Rule, "target", w.Target,
			"first_event_id", w.First.ID, "repeated", w.Count)
	}
	// A crash before this removal releases the window again after the
	// restart: same summary ID, which the queue already holds.
	if err := e.st.remove(dedupDir, w.key()+".json"); err != nil {
		return err
	}
	delete(e.windows, w.key())
	return nil
}

// summary is the event that stands for a window's repeats: the first
// event's type, hostname, severity and fields, and fields.repeated.
func summary(w *window) *event.Event {
	f := w.First
	ev := &event.Event{
		ID:        hashID("s", w.key(), w.Start.UTC().Format(time.RFC3339Nano)),
		Timestamp: w.End.Truncate(time.Second),
		Severity:  f.Severity,
		Title:     fmt.Sprintf("%s (repeated %d times)", f.Title, w.Count),
		Body: fmt.Sprintf("%q happened %d more times between %s and %s after the first one (event %s), which was delivered.\n",
			f.Title, w.Count, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), f.ID),
		Fields: map[string]string{},
	}
	if !w.Last.IsZero() {
		ev.Body += "The last repeat came at " + w.Last.Format(time.RFC3339) + ".\n"
	}
	for k, v := range f.Fields {
		ev.Fields[k] = v
	}
	ev.Fields["repeated"] = strconv.Itoa(w.Count)
	ev.Fields["noise-rule"] = w.Rule
	ev.Fields["first-event-id"] = f.ID
	return ev
}

// releaseGroup queues one group of held deliveries (one target, one rule,
// one release time): the event itself when quiet hours held just one, else
// one digest. Caller holds mu.
func (e *Engine) releaseGroup(g string, names []string) error {
	slices.Sort(names)
	hs := make([]*held, len(names))
	for i, n := range names {
		hs[i] = e.held[n]
	}
	slices.SortStableFunc(hs, func(a, b *held) int {
		return cmp.Or(a.Event.Timestamp.Compare(b.Event.Timestamp), strings.Compare(a.Event.ID, b.Event.ID))
	})
	first := hs[0]
	var ev *event.Event
	if len(hs) == 1 && first.Kind == KindQuiet {
		cp := *first.Event
		if first.Mail != nil {
			cp.Mail = &event.Mail{Raw: first.Mail, From: first.From, Recipients: first.Rcpts}
		}
		ev = &cp
	} else {
		ev = e.digest(g, hs)
	}
	if err := e.opt.Queue.Enqueue(ev, []string{first.Target}); err != nil {
		return err
	}
	// The marker says these held files are delivered: a crash while they
	// are removed must not leave a remainder that is delivered again.
	if err := e.st.write(releasedDir, g+".json", release{Group: g, Members: names}); err != nil {
		// Not removed either: the next release queues the same event ID
		// again, which the queue ignores.
		return err
	}
	if err := e.st.remove(heldDir, names...); err != nil {
		e.log.Warn("cannot remove released held deliveries; the next start does", "group", g, "err", err)
	} else if err := e.st.remove(releasedDir, g+".json"); err != nil {
		e.log.Warn("cannot remove release marker", "group", g, "err", err)
	}
	for _, n := range names {
		delete(e.held, n)
	}
	e.log.Info("held deliveries released", "event_id", ev.ID, "kind", first.Kind, "rule", first.Rule,
		"target", first.Target, "held", len(hs))
	return nil
}

// Bounds of a digest's body: each held event's body is repeated up to
// maxDigestBody, all of them up to maxDigestBodies, and the table lists at
// most maxDigestRows events (the rest are counted; all stay in the history).
const (
	maxDigestBody   = 4 << 10
	maxDigestBodies = 512 << 10
	maxDigestRows   = 2000
)

// digest builds the digest event of a group, oldest first: a table of
// times, severities and titles; a quiet-hours digest adds each body, as
// those events were not delivered on their own.
func (e *Engine) digest(g string, hs []*held) *event.Event {
	first := hs[0]
	sev := event.Info
	for _, h := range hs {
		sev = max(sev, h.Event.Severity)
	}
	host := e.opt.Hostname
	if host == "" {
		host = first.Event.Fields[event.FieldHostname]
	}
	title := fmt.Sprintf("Digest: %d notifications", len(hs))
	if first.Kind == KindQuiet {
		title = fmt.Sprintf("%d notifications held during quiet hours", len(hs))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (noise rule %s, target %s):\n\n", title, first.Rule, first.Target)
	fmt.Fprintf(&b, "%-25s  %-8s  %s\n", "TIME", "SEVERITY", "TITLE")
	for i, h := range hs {
		if i == maxDigestRows {
			fmt.Fprintf(&b, "… and %d more (herald history lists them all)\n", len(hs)-i)
			break
		}
		fmt.Fprintf(&b, "%-25s  %-8s  %s\n", h.Event.Timestamp.In(e.loc).Format(time.RFC3339), h.Event.Severity, oneLine(h.Event.Title))
	}
	if first.Kind == KindQuiet {
		tableLen := b.Len()
		for i, h := range hs {
			if b.Len()-tableLen > maxDigestBodies {
				fmt.Fprintf(&b, "\n[%d more bodies left out; herald history has them]\n", len(hs)-i)
				break
			}
			body := h.Event.Body
			if len(body) > maxDigestBody {
				body = body[:maxDigestBody] + "\n[…]"
			}
			fmt.Fprintf(&b, "\n--- %s  %s (event %s)\n%s\n", h.Event.Timestamp.In(e.loc).Format(time.RFC3339), oneLine(h.Event.Title), h.Event.ID, strings.TrimRight(body, "\n"))
		}
	} else {
		b.WriteString("\nThe full events are in the history (herald history).\n")
	}
	return &event.Event{
		ID:        hashID("D", g),
		Timestamp: first.Release.Truncate(time.Second),
		Severity:  sev,
		Title:     title,
		Body:      b.String(),
		Fields: map[string]string{
			event.FieldType:     "digest",
			event.FieldHostname: host,
			"noise-rule":        first.Rule,
			"noise-kind":        first.Kind,
			"count":             strconv.Itoa(len(hs)),
		},
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
