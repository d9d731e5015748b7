package config

import (
	"fmt"
	"strconv"
	"time"
)

// The typed form of each target section, as the target factory
// (internal/target/build) reads it: Section.Target decodes a section into
// one of these. Credentials stay Secret. A value that passed the schema but
// that the target cannot use (a timeout that is no duration) is an error
// here; the factory then disables that one target (docs/proxmox-compat.md).

// FileTarget is a `file:` section (herald's own).
type FileTarget struct{ Path string }

// MboxTarget is an `mbox:` section (herald's own).
type MboxTarget struct{ Path string }

// JournalTarget is a `journal:` section (herald's own).
type JournalTarget struct{ Identifier string }

// ExecTarget is an `exec:` section (herald's own).
type ExecTarget struct {
	Command string
	Timeout time.Duration // 0: the target's default
}

// GotifyTarget is a `gotify:` section.
type GotifyTarget struct {
	Server string
	Token  Secret
}

// NtfyTarget is an `ntfy:` section (herald's own).
type NtfyTarget struct {
	Server, Topic string
	Token         Secret
	Priority      int // 0: from the severity
	Tags          []string
}

// WebhookTarget is a `webhook:` section; header values, the body and the
// secrets are decoded from their base64.
type WebhookTarget struct {
	URL, Method string
	Headers     []NameValue
	Body        string
	Secrets     map[string]Secret
}

// AlertmanagerTarget is an `alertmanager:` section (herald's own).
type AlertmanagerTarget struct {
	URLs        []string
	LabelFields []string
	// ResolveAfter, ResendInterval and Timeout are 0 when not set: the
	// target's defaults.
	ResolveAfter, ResendInterval, Timeout time.Duration
	CAFile, Username                      string
	Password, Token                       Secret
}

// MailRecipients is what a mail target section says about whom it mails.
type MailRecipients struct {
	Mailto, MailtoUser []string
	// Field is mailto-field: the event field whose value is looked up.
	Field string
}

// SMTPTarget is an `smtp:` section.
type SMTPTarget struct {
	Server      string
	Port        int // 0: by mode
	Mode        string
	Username    string
	Password    Secret // empty without a username: Proxmox authenticates only with one
	FromAddress string // as written, display name and all; "" when not set
	Author      string
	Recipients  MailRecipients
}

// SendmailTarget is a `sendmail:` section.
type SendmailTarget struct {
	FromAddress, Author string
	SendmailPath        string
	Recipients          MailRecipients
}

// Target decodes s, a target section, into its typed form: a FileTarget,
// MboxTarget, JournalTarget, ExecTarget, GotifyTarget, NtfyTarget,
// WebhookTarget, AlertmanagerTarget, SMTPTarget or SendmailTarget.
func (s *Section) Target() (any, error) {
	get := func(k string) string { v, _ := s.Get(k); return v }
	switch s.Type {
	case "file":
		return FileTarget{Path: get("path")}, nil
	case "mbox":
		return MboxTarget{Path: get("path")}, nil
	case "journal":
		return JournalTarget{Identifier: get("identifier")}, nil
	case "exec":
		t := ExecTarget{Command: get("command")}
		return t, s.duration("timeout", &t.Timeout)
	case "gotify":
		tok, _ := s.Secret("token")
		return GotifyTarget{Server: get("server"), Token: tok}, nil
	case "ntfy":
		tok, _ := s.Secret("token")
		t := NtfyTarget{Server: get("server"), Topic: get("topic"), Token: tok, Tags: s.List("tags")}
		return t, s.integer("priority", &t.Priority)
	case "webhook":
		t := WebhookTarget{URL: get("url"), Method: get("method"), Headers: s.Headers(), Secrets: map[string]Secret{}}
		for _, ns := range s.NamedSecrets("secret") {
			t.Secrets[ns.Name] = ns.Value
		}
		t.Body, _ = s.Decoded("body")
		return t, nil
	case "alertmanager":
		t := AlertmanagerTarget{URLs: s.List("url"), LabelFields: s.List("label-field"),
			CAFile: get("ca-file"), Username: get("username")}
		t.Password, _ = s.Secret("password")
		t.Token, _ = s.Secret("token")
		for key, dst := range map[string]*time.Duration{"resolve-after": &t.ResolveAfter,
			"resend-interval": &t.ResendInterval, "timeout": &t.Timeout} {
			if err := s.duration(key, dst); err != nil {
				return nil, err
			}
		}
		return t, nil
	case "smtp":
		t := SMTPTarget{Server: get("server"), Mode: get("mode"), Username: get("username"),
			FromAddress: get("from-address"), Author: get("author"), Recipients: s.mailRecipients()}
		if t.Username != "" {
			t.Password, _ = s.Secret("password") // Proxmox authenticates only with a username (Load warns)
		}
		return t, s.integer("port", &t.Port)
	case "sendmail":
		return SendmailTarget{FromAddress: get("from-address"), Author: get("author"),
			SendmailPath: get("sendmail-path"), Recipients: s.mailRecipients()}, nil
	}
	return nil, fmt.Errorf("unsupported target type %q", s.Type)
}

func (s *Section) mailRecipients() MailRecipients {
	field, _ := s.Get(MailtoFieldKey)
	return MailRecipients{Mailto: s.List("mailto"), MailtoUser: s.List("mailto-user"), Field: field}
}

// duration sets *dst from key when the section has it.
func (s *Section) duration(key string, dst *time.Duration) error {
	v, ok := s.Get(key)
	if !ok || v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	*dst = d
	return nil
}

// integer sets *dst from key when the section has it.
func (s *Section) integer(key string, dst *int) error {
	v, ok := s.Get(key)
	if !ok || v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}
