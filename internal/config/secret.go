package config

import (
	"fmt"
	"io"
)

// redacted is what every printed form of a secret shows.
const redacted = "<secret>"

// Secret holds a password, token or webhook secret from the private file.
// Every way of printing it — String, GoString, any fmt verb, JSON, text —
// shows "<secret>"; Reveal is the only way to the value, so a secret cannot
// reach a log line or an error message by accident.
type Secret struct {
	v string
}

// NewSecret wraps a value (for tests and for targets that build their own).
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret value. Call it only where the value is sent to
// its destination.
func (s Secret) Reveal() string { return s.v }

// IsEmpty reports whether the secret value is the empty string.
func (s Secret) IsEmpty() bool { return s.v == "" }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb (%v %s %q %x %d ...)
// prints the placeholder.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// NamedSecret is one webhook secret: `secret name=N,value=BASE64` in the
// private file, with the value decoded.
type NamedSecret struct {
	Name  string `json:"name"`
	Value Secret `json:"value"`
}

// NameValue is one webhook header: `header name=N,value=BASE64`, with the
// value decoded. Header values are not secrets (Proxmox keeps them in the
// public file); put credentials in a secret and reference it from a template.
type NameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
