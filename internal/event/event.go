// Package event holds herald's notification event: the one value that every
// ingest path produces and that the router, the delivery queue and the targets
// consume. Its JSON form is a contract (docs/interfaces.md §2).
package event

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Severity is the importance of an event, ordered as Proxmox orders it:
// info < notice < warning < error < unknown.
type Severity int

// The five severities, in Proxmox's declaration order.
const (
	Info Severity = iota
	Notice
	Warning
	Error
	Unknown
)

var severityNames = [...]string{"info", "notice", "warning", "error", "unknown"}

// Severities lists every severity in order.
func Severities() []Severity { return []Severity{Info, Notice, Warning, Error, Unknown} }

// String returns the lower-case name used in configs and JSON.
func (s Severity) String() string {
	if s < Info || s > Unknown {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity accepts exactly the lower-case names, as Proxmox does.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if s == n {
			return Severity(i), nil
		}
	}
	return Unknown, fmt.Errorf("invalid severity %q (want one of info, notice, warning, error, unknown)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) {
	if s < Info || s > Unknown {
		return nil, fmt.Errorf("invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Well-known field names. type and hostname always live in Fields, as in
// Proxmox, so that match-field sees them.
const (
	FieldType     = "type"
	FieldHostname = "hostname"
)

// Mail is the original message an event came from. It is not part of the
// event's JSON: targets that forward mail as-is (sendmail, mbox) use it.
type Mail struct {
	Raw []byte // the message exactly as received
	// Open, when set, opens a reader of Raw's bytes from the file that
	// holds them (a large spool entry the daemon mapped rather than read):
	// a copy of the mail then goes file to file instead of through memory.
	Open       func() (io.ReadCloser, error)
	From       string   // envelope sender ("" for the null sender)
	Recipients []string // envelope recipients
	// UID is the submitting user as the spool recorded it (the maildrop
	// file's owner, the daemon's uid for SMTP); mailq shows a user the
	// mail they submitted.
	UID int
}

// Event is one notification.
type Event struct {
	ID        string            `json:"id"`
	Timestamp time.Time         `json:"timestamp"`
	Severity  Severity          `json:"severity"`
	Title     string            `json:"title"`
	Body      string            `json:"body"`
	Fields    map[string]string `json:"fields"`

	// Mail is set when the event was made from a mail.
	Mail *Mail `json:"-"`
}

// Type returns the event's type field.
func (e *Event) Type() string { return e.Fields[FieldType] }

// SetField sets a metadata field, creating the map when needed.
func (e *Event) SetField(k, v string) {
	if e.Fields == nil {
		e.Fields = make(map[string]string)
	}
	e.Fields[k] = v
}

// wire is the JSON shape; the timestamp is RFC 3339 with second precision.
type wire struct {
	ID        string            `json:"id"`
	Timestamp string            `json:"timestamp"`
	Severity  Severity          `json:"severity"`
	Title     string            `json:"title"`
	Body      string            `json:"body"`
	Fields    map[string]string `json:"fields"`
}

// MarshalJSON writes the docs/interfaces.md §2 form. Keys of fields come out sorted.
func (e Event) MarshalJSON() ([]byte, error) {
	f := e.Fields
	if f == nil {
		f = map[string]string{}
	}
	w := wire{ID: e.ID, Timestamp: e.Timestamp.Format(time.RFC3339), Severity: e.Severity,
		Title: e.Title, Body: e.Body, Fields: f}
	var buf bytes.Buffer
	buf.Grow(len(e.Title) + len(e.Body) + 512) // one buffer for a 1 MiB body, not a doubling series
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// JSONLine returns the event as one line of JSON ending in a newline, with
// <, > and & left as they are (json.Marshal would escape them as \u003c...).
// Every writer of event JSON for people or files uses it.
func JSONLine(ev *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalJSON reads the docs/interfaces.md §2 form. A missing severity means unknown,
// a missing timestamp is left zero for the caller to fill in.
func (e *Event) UnmarshalJSON(b []byte) error {
	w := wire{Severity: Unknown}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var ts time.Time
	if w.Timestamp != "" {
		t, err := time.Parse(time.RFC3339, w.Timestamp)
		if err != nil {
			return fmt.Errorf("timestamp: %w", err)
		}
		ts = t
	}
	*e = Event{ID: w.ID, Timestamp: ts, Severity: w.Severity, Title: w.Title, Body: w.Body, Fields: w.Fields}
	return nil
}

// NewID returns a random identifier (UUID version 4 text form, as Proxmox
// uses for notification IDs).
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; if it ever does, a panic is
		// better than duplicate IDs.
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
