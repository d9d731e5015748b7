// Package mailconv turns a raw mail into a notification event, the way
// Proxmox's proxmox-mail-forward does: title from the decoded Subject, body
// from the text/plain part (or the HTML part rendered as text), severity
// unknown, type system-mail. Classifiers then recognise well-known senders
// and refine type, severity and fields.
//
// Conversion is a pure function of the bytes and the options (when ID, Now
// and Hostname are given) and never fails: broken MIME, unknown charsets, NUL bytes, odd line ends, a missing
// header — every input becomes an event with best-effort text, because a
// notification must never be lost. The raw message is kept unchanged on the
// event for targets that forward mail as-is.
package mailconv

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"herald/internal/event"
)

// TypeSystemMail is the event type of a mail no classifier recognised.
const TypeSystemMail = "system-mail"

// Mail field names set on every event made from a mail (when the header is
// present).
const (
	FieldFrom      = "from"
	FieldTo        = "to"
	FieldSubject   = "subject"
	FieldMessageID = "message-id"
)

// Options tune Convert.
type Options struct {
	// ID is the event ID to use; "" makes a new one with event.NewID.
	ID string
	// Now is the event timestamp: the forwarding time, as in Proxmox, not
	// the Date header. Zero means time.Now().
	Now time.Time
	// Hostname is the short host name for the hostname field; "" means
	// this host's name up to the first dot.
	Hostname string
	// Classifiers run in order after the defaults are set; the first that
	// returns true wins.
	Classifiers []Classifier
	// Log receives a line when a classifier panics or times out; nil
	// discards it.
	Log *slog.Logger
	// ClassifierTimeout bounds each classifier's run; one that takes
	// longer is skipped (and left to finish on its own copy of the event).
	// Zero means DefaultClassifierTimeout.
	ClassifierTimeout time.Duration
}

// DefaultClassifierTimeout is how long one classifier may take on one mail.
// The built-ins take microseconds; the bound is for a classifier that loops.
const DefaultClassifierTimeout = 2 * time.Second

// Named is implemented by classifiers that have a name; logs, the journal
// line and herald explain use it. Others are named by their position.
type Named interface {
	Name() string
}

// Classification says how Convert classified a mail.
type Classification struct {
	// Classifier names the classifier that recognised the mail, "" when
	// none did (the event stays system-mail, severity unknown).
	Classifier string `json:"classifier,omitempty"`
	// Skipped names the classifiers that panicked or timed out on it.
	Skipped []string `json:"skipped,omitempty"`
	// Set is what the classifier changed on the event: the fields it set
	// or changed, and "severity" when it set one.
	Set map[string]string `json:"set,omitempty"`
}

// Classifier recognises a kind of mail and sets type, severity and fields
// on the event. It returns false when the mail is not its kind; changes it
// made to ev are then discarded.
type Classifier interface {
	Classify(m *Message, ev *event.Event) bool
}

// ClassifierFunc adapts a function to the Classifier interface.
type ClassifierFunc func(m *Message, ev *event.Event) bool

// Classify calls f.
func (f ClassifierFunc) Classify(m *Message, ev *event.Event) bool { return f(m, ev) }

// Convert turns a raw mail into an event. It never fails and never returns
// nil. ev.Mail.Raw is raw itself, unchanged.
func Convert(raw []byte, opt Options) *event.Event {
	ev, _ := ConvertClassified(raw, opt)
	return ev
}

// ConvertClassified is Convert that also says which classifier recognised
// the mail.
func ConvertClassified(raw []byte, opt Options) (*event.Event, Classification) {
	m := Parse(raw)
	def := defaultEvent(m, opt)
	ev, res := runClassifiers(m, def, opt)
	finish(ev, raw)
	if res.Classifier != "" {
		res.Set = map[string]string{}
		for k, v := range ev.Fields {
			if old, ok := def.Fields[k]; !ok || old != v {
				res.Set[k] = v
			}
		}
		if ev.Severity != def.Severity {
			res.Set["severity"] = ev.Severity.String()
		}
	}
	return ev, res
}

// classifierName is c's name, or its position in the list.
func classifierName(c Classifier, i int) string {
	if n, ok := c.(Named); ok {
		return n.Name()
	}
	return fmt.Sprintf("#%d", i)
}

// defaultEvent is the event Proxmox makes for forwarded system mail.
func defaultEvent(m *Message, opt Options) *event.Event {
	id := opt.ID
	if id == "" {
		id = event.NewID()
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	host := opt.Hostname
	if host == "" {
		host = shortHostname()
	}
	body := m.Body
	if len(m.Attachments) > 0 {
		if body != "" {
			body += "\n\n"
		}
		body += attachmentList(m.Attachments)
	}
	ev := &event.Event{
		ID:        id,
		Timestamp: now,
		Severity:  event.Unknown,
		Title:     strings.TrimSpace(m.Subject),
		Body:      body,
		Fields: map[string]string{
			event.FieldType:     TypeSystemMail,
			event.FieldHostname: host,
		},
		Mail: &event.Mail{Raw: m.Raw},
	}
	if m.Header.Has("From") {
		ev.Fields[FieldFrom] = m.From
	}
	if m.Header.Has("To") {
		ev.Fields[FieldTo] = m.To
	}
	if m.Header.Has("Subject") {
		ev.Fields[FieldSubject] = m.Subject
	}
	if m.Header.Has("Message-Id") {
		ev.Fields[FieldMessageID] = m.MessageID
	}
	return ev
}

// outcome is what one classifier made of a mail.
type outcome struct {
	i     int
	ev    *event.Event // the classifier's copy, when ok
	ok    bool
	panic any
}

// runClassifiers runs the classifiers in order until one recognises the
// mail. They run on a worker goroutine, one after the other, each on its own
// copy of ev (a classifier that declines or panics halfway leaves no
// trace). A classifier that does not finish within the timeout is
// abandoned with its worker, and a new worker carries on with the next
// one: a classifier stuck in a loop cannot hold the mail.
func runClassifiers(m *Message, ev *event.Event, opt Options) (*event.Event, Classification) {
	var res Classification
	cs := opt.Classifiers
	if len(cs) == 0 {
		return ev, res
	}
	timeout := opt.ClassifierTimeout
	if timeout <= 0 {
		timeout = DefaultClassifierTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for from := 0; from < len(cs); {
		// Buffered for every outcome, so that an abandoned worker never
		// blocks; stop tells it to run no further classifier.
		out := make(chan outcome, len(cs)-from)
		stop := make(chan struct{})
		go work(cs, from, m, ev, out, stop)
		i, timedOut := from, false
		for ; i < len(cs) && !timedOut; i++ {
			t.Reset(timeout)
			select {
			case o := <-out:
				if o.panic != nil {
					res.Skipped = append(res.Skipped, classifierName(cs[i], i))
					if opt.Log != nil {
						opt.Log.Error("mail classifier panicked; skipped", "event_id", ev.ID, "classifier", classifierName(cs[i], i), "panic", fmt.Sprint(o.panic))
					}
				}
				if o.ok {
					res.Classifier = classifierName(cs[i], i)
					return o.ev, res
				}
			case <-t.C:
				close(stop) // a new worker goes on with the next classifier
				timedOut = true
				res.Skipped = append(res.Skipped, classifierName(cs[i], i))
				if opt.Log != nil {
					opt.Log.Error("mail classifier timed out; skipped", "event_id", ev.ID, "classifier", classifierName(cs[i], i), "timeout", timeout.String())
				}
			}
		}
		from = i
	}
	return ev, res
}

// work runs cs[from:] on m until one recognises it or stop is closed,
// sending one outcome per classifier.
func work(cs []Classifier, from int, m *Message, ev *event.Event, out chan<- outcome, stop <-chan struct{}) {
	// The raw mail may be a mapping of its file that ends once the
	// daemon has processed the mail (docs/limits.md, "Memory"), while an
	// abandoned worker may run on: a read of it then faults, which this makes a panic
	// that classifyOne recovers from, not a crash of the daemon.
	debug.SetPanicOnFault(true)
	for i := from; i < len(cs); i++ {
		select {
		case <-stop:
			return
		default:
		}
		o := classifyOne(cs[i], i, m, ev)
		out <- o
		if o.ok {
			return
		}
	}
}

// classifyOne runs one classifier on a copy of ev.
func classifyOne(c Classifier, i int, m *Message, ev *event.Event) (o outcome) {
	o.i = i
	cp := *ev
	cp.Fields = make(map[string]string, len(ev.Fields)+4)
	for k, v := range ev.Fields {
		cp.Fields[k] = v
	}
	if ev.Mail != nil {
		mail := *ev.Mail
		cp.Mail = &mail
	}
	defer func() {
		if r := recover(); r != nil {
			o = outcome{i: i, panic: r}
		}
	}()
	if c.Classify(m, &cp) {
		o.ok, o.ev = true, &cp
	}
	return o
}

// finish restores the invariants a classifier might have broken: valid
// UTF-8 text, a type, the raw mail.
func finish(ev *event.Event, raw []byte) {
	if !utf8.ValidString(ev.Title) {
		ev.Title = strings.ToValidUTF8(ev.Title, "\uFFFD")
	}
	if !utf8.ValidString(ev.Body) {
		ev.Body = strings.ToValidUTF8(ev.Body, "\uFFFD")
	}
	if ev.Fields == nil {
		ev.Fields = map[string]string{}
	}
	if ev.Fields[event.FieldType] == "" {
		ev.Fields[event.FieldType] = TypeSystemMail
	}
	if ev.Mail == nil {
		ev.Mail = &event.Mail{}
	}
	ev.Mail.Raw = raw
}

// shortHostname is this host's name up to the first dot, as Proxmox's
// nodename().
func shortHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	return h
}
