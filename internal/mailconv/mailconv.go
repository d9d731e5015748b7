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
	"log/slog"
	"os"
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
	// Log receives a line when a classifier panics; nil discards it.
	Log *slog.Logger
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
	m := Parse(raw)
	ev := defaultEvent(m, opt)
	for i, c := range opt.Classifiers {
		if got, ok := classify(c, m, ev, opt.Log, i); ok {
			ev = got
			break
		}
	}
	finish(ev, raw)
	return ev
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

// classify runs one classifier on a copy of ev, so that a classifier that
// declines (or panics) halfway leaves no trace.
func classify(c Classifier, m *Message, ev *event.Event, log *slog.Logger, i int) (got *event.Event, ok bool) {
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
			if log != nil {
				log.Error("mail classifier panicked; skipped", "event", ev.ID, "classifier", i, "panic", r)
			}
			got, ok = nil, false
		}
	}()
	if !c.Classify(m, &cp) {
		return nil, false
	}
	return &cp, true
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
