package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Normalize fills in what a submitter may leave out of an event, the same
// way for every door (HTTP API, spool, `herald explain`): a missing
// timestamp becomes now (whole seconds), a missing hostname field the
// daemon's host name. It never overrides what the event says.
func Normalize(ev *Event, hostname string, now time.Time) {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = now.Truncate(time.Second)
	}
	if ev.Fields[FieldHostname] == "" && hostname != "" {
		ev.SetField(FieldHostname, hostname)
	}
}

// The keys an event object may have (docs/interfaces.md §2).
const (
	keyID        = "id"
	keyTimestamp = "timestamp"
	keySeverity  = "severity"
	keyTitle     = "title"
	keyBody      = "body"
	keyFields    = "fields"
)

// Decode validates an event JSON document strictly and returns the event:
// one JSON object with only the keys of the event format (docs/interfaces.md
// §2; exact case, each at most once), severity one of the five names, fields
// an object of strings with a non-empty type. title, body, timestamp (RFC 3339) and id are optional;
// the id is ignored (the daemon assigns one) and a missing timestamp is left
// zero. null counts as absent.
func Decode(b []byte) (*Event, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty body: want an event JSON object")
	}
	ev := &Event{}
	var haveSeverity bool
	err := eachMember(b, func(key string, val json.RawMessage) error {
		switch key {
		case keyID:
			_, err := optString(key, val)
			return err
		case keyTimestamp:
			s, err := optString(key, val)
			if err != nil || s == nil {
				return err
			}
			t, err := time.Parse(time.RFC3339, *s)
			if err != nil {
				return fmt.Errorf("timestamp %q: want RFC 3339, like 2006-01-02T15:04:05Z", *s)
			}
			ev.Timestamp = t
		case keySeverity:
			s, err := optString(key, val)
			if err != nil || s == nil {
				return err
			}
			sev, err := ParseSeverity(*s)
			if err != nil {
				return err
			}
			ev.Severity, haveSeverity = sev, true
		case keyTitle, keyBody:
			s, err := optString(key, val)
			if err != nil || s == nil {
				return err
			}
			if key == keyTitle {
				ev.Title = *s
			} else {
				ev.Body = *s
			}
		case keyFields:
			if isNull(val) {
				return nil
			}
			fields := map[string]string{}
			err := eachMember(val, func(k string, v json.RawMessage) error {
				if k == "" {
					return errors.New("fields: empty field name")
				}
				var s string
				// Unmarshal takes null for a string without complaint;
				// a field is a string, so null is refused too.
				if err := json.Unmarshal(v, &s); err != nil || isNull(v) {
					return fmt.Errorf("fields.%s: must be a string", k)
				}
				fields[k] = s
				return nil
			})
			if err != nil {
				if errors.Is(err, errNotObject) {
					return errors.New("fields: must be an object of strings")
				}
				if errors.Is(err, errDuplicate) {
					return fmt.Errorf("fields: %w", err)
				}
				return err
			}
			ev.Fields = fields
		case "type", "hostname":
			return fmt.Errorf("unknown key %q (it belongs in \"fields\")", key)
		default:
			return fmt.Errorf("unknown key %q (allowed: id, timestamp, severity, title, body, fields)", key)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errNotObject) {
			return nil, errors.New("the body must be a JSON object")
		}
		return nil, err
	}
	if !haveSeverity {
		return nil, errors.New("severity is required (info, notice, warning, error or unknown)")
	}
	if ev.Fields[FieldType] == "" {
		return nil, errors.New("fields.type is required")
	}
	return ev, nil
}

// errNotObject reports a JSON value that is not an object where one is
// required.
var errNotObject = errors.New("not a JSON object")

// errDuplicate reports a key that occurs twice in one object.
var errDuplicate = errors.New("duplicate key")

// syntaxError marks encoding/json's errors as being about the syntax.
type syntaxError struct{ err error }

func (e *syntaxError) Error() string { return "invalid JSON: " + e.err.Error() }
func (e *syntaxError) Unwrap() error { return e.err }

// eachMember calls fn for each member of the JSON object in data, in order.
// It fails on anything that is not exactly one object (errNotObject, or a
// syntax error), on a duplicate key (encoding/json would silently keep the
// last one), and on data after the object.
func eachMember(data []byte, fn func(key string, val json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return &syntaxError{err}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errNotObject
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return &syntaxError{err}
		}
		key, ok := tok.(string)
		if !ok {
			// The decoder's tokenizer only yields strings as object keys.
			return &syntaxError{fmt.Errorf("object key %v is not a string", tok)}
		}
		if seen[key] {
			return fmt.Errorf("%w %q", errDuplicate, key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return &syntaxError{err}
		}
		if err := fn(key, val); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return &syntaxError{err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return &syntaxError{err}
		}
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}

// optString decodes a string member that may be null or absent.
func optString(key string, val json.RawMessage) (*string, error) {
	var s *string
	if err := json.Unmarshal(val, &s); err != nil {
		return nil, fmt.Errorf("%s: must be a string", key)
	}
	return s, nil
}

// isNull reports whether val is the JSON literal null.
func isNull(val json.RawMessage) bool {
	return string(bytes.TrimSpace(val)) == "null"
}
