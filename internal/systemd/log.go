package systemd

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// SyslogIdentifier is the SYSLOG_IDENTIFIER of every journal entry herald
// writes through NewLogHandler (`journalctl -t herald`).
const SyslogIdentifier = "herald"

// NewLogHandler returns herald's slog.Handler. When stderr is connected to
// the journal (JOURNAL_STREAM names stderr's device and inode, which is how
// systemd says so), entries go to the journal natively, one field per slog
// attribute: the key upper-cased, groups joined with "_" (event_id →
// EVENT_ID, delivery_id → DELIVERY_ID, target → TARGET), plus MESSAGE,
// PRIORITY from the level and SYSLOG_IDENTIFIER=herald; see journalField
// for the exact rules. `journalctl -u herald EVENT_ID=...` then finds every
// line about one event. Otherwise, and for any entry the journal socket
// refuses, it writes slog text lines to w.
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	text := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	// A malformed JOURNAL_STREAM (err != nil) is treated like none: text
	// on stderr still reaches whatever reads it.
	if ok, err := journal.StderrIsJournalStream(); err != nil || !ok {
		return text
	}
	return newJournalHandler(level, journal.Send, text)
}

// sendFunc is journal.Send; tests replace it to see the entries.
type sendFunc func(message string, priority journal.Priority, vars map[string]string) error

// journalHandler writes records as native journal entries. It is immutable;
// WithAttrs and WithGroup return copies.
type journalHandler struct {
	level    slog.Leveler
	send     sendFunc
	fallback slog.Handler // text handler with the same attrs and groups
	prefix   string       // open groups, each followed by "_"
	fields   []field      // attributes from WithAttrs, already converted
}

type field struct{ name, value string }

func newJournalHandler(level slog.Leveler, send sendFunc, fallback slog.Handler) *journalHandler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &journalHandler{level: level, send: send, fallback: fallback}
}

// Enabled reports whether records at l are logged.
func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle sends r as one journal entry. If the journal socket refuses it
// (journald restarting, or an entry too large for a datagram
// with no /dev/shm for go-systemd's large-entry path), the record
// is written as a text line instead, which systemd also collects from
// stderr, so nothing is lost but the structure.
func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	vars := make(map[string]string, len(h.fields)+r.NumAttrs()+1)
	for _, f := range h.fields {
		vars[f.name] = f.value
	}
	r.Attrs(func(a slog.Attr) bool {
		appendFields(h.prefix, a, func(f field) { vars[f.name] = f.value })
		return true
	})
	// Set last: no attribute can replace it (reserved names are renamed
	// anyway, see journalField).
	vars["SYSLOG_IDENTIFIER"] = SyslogIdentifier
	if err := h.send(r.Message, priority(r.Level), vars); err != nil {
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

// WithAttrs returns a handler that adds attrs to every entry.
func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := *h
	c.fields = slices.Clip(h.fields) // appends below copy, h keeps its own
	for _, a := range attrs {
		appendFields(h.prefix, a, func(f field) { c.fields = append(c.fields, f) })
	}
	c.fallback = h.fallback.WithAttrs(attrs)
	return &c
}

// WithGroup returns a handler that qualifies later attributes with name.
func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "_"
	c.fallback = h.fallback.WithGroup(name)
	return &c
}

// priority maps a slog level to a syslog priority: below Info is debug (7),
// Info is info (6), between Info and Warn notice (5), Warn up to Error
// warning (4), Error and above err (3). herald never logs at crit or above:
// an emergency of one daemon is not the system's.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l > slog.LevelInfo:
		return journal.PriNotice
	case l == slog.LevelInfo:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}

// appendFields converts one slog attribute (under the open groups prefix)
// to journal fields and passes each to add. It follows slog's rules: an
// empty attribute is dropped, a group's members are qualified by its key,
// a group with an empty key is inlined, an empty group adds nothing, and
// LogValuers (such as secrets that print as "<secret>") are resolved first.
func appendFields(prefix string, a slog.Attr, add func(field)) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "_"
		}
		for _, m := range a.Value.Group() {
			appendFields(p, m, add)
		}
		return
	}
	add(field{name: journalField(prefix + a.Key), value: fieldValue(a.Value)})
}

func fieldValue(v slog.Value) string {
	if v.Kind() == slog.KindTime {
		// The same form as the text handler, not time.Time.String().
		return v.Time().Format(time.RFC3339Nano)
	}
	return v.String()
}

// maxFieldName is journald's limit on the length of a field name.
const maxFieldName = 64

// reservedFields are names journald or journalctl give a meaning to
// (systemd.journal-fields(7): user journal fields and fields logged on behalf
// of another program). An attribute called "message" or "unit" must not
// replace or fake them, so such names get the ATTR_ prefix.
var reservedFields = map[string]bool{
	"MESSAGE": true, "MESSAGE_ID": true, "PRIORITY": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true, "ERRNO": true,
	"INVOCATION_ID": true, "USER_INVOCATION_ID": true,
	"SYSLOG_FACILITY": true, "SYSLOG_IDENTIFIER": true, "SYSLOG_PID": true,
	"SYSLOG_TIMESTAMP": true, "SYSLOG_RAW": true,
	"DOCUMENTATION": true, "TID": true, "UNIT": true, "USER_UNIT": true,
	"OBJECT_PID": true, "COREDUMP_UNIT": true, "COREDUMP_USER_UNIT": true,
}

// journalField turns an attribute key (groups already joined with "_")
// into a journal field name that journald accepts: ASCII letters
// upper-cased, every other character but digits and "_" replaced by "_",
// leading underscores removed (they mark trusted fields, which journald
// drops from clients), "ATTR_" put in front of a name that would start with
// a digit, be empty or be reserved, and the result cut to 64 bytes.
func journalField(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range key {
		switch {
		case 'a' <= r && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), "_")
	switch {
	case name == "":
		name = "ATTR"
	case name[0] >= '0' && name[0] <= '9', reservedFields[name], strings.HasPrefix(name, "OBJECT_"):
		name = "ATTR_" + name
	}
	if len(name) > maxFieldName {
		name = name[:maxFieldName]
	}
	return name
}
