// Package classify holds herald's mail classifiers: the built-in ones that
// recognise the mails of well-known senders (Bacula, smartd, cron,
// unattended-upgrades, apticron, logwatch, mdadm, ZFS zed, Proxmox VE
// vzdump, Proxmox Backup Server) and the user's classifier sections. Each
// built-in keys on its sender's structure — header fields, the subject's
// exact form, the body's layout — never on keywords alone, and sets the
// event's type, severity and fields as docs/classifiers.md describes.
package classify

import (
	"regexp"
	"slices"
	"strings"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailconv"
)

// Builtin is one built-in classifier.
type Builtin struct {
	name     string
	classify func(m *mailconv.Message, ev *event.Event) bool
}

// Name returns the classifier's name (used by classifiers-disable, the
// journal line and herald explain).
func (b Builtin) Name() string { return b.name }

// Classify implements mailconv.Classifier.
func (b Builtin) Classify(m *mailconv.Message, ev *event.Event) bool { return b.classify(m, ev) }

// builtins in the order they run. The order matters little: each keys on
// a structure no other sender has.
var builtins = []Builtin{
	{"bacula", classifyBacula},
	{"smartd", classifySmartd},
	{"cron", classifyCron},
	{"unattended-upgrades", classifyUnattended},
	{"apticron", classifyApticron},
	{"logwatch", classifyLogwatch},
	{"mdadm", classifyMdadm},
	{"zfs", classifyZFS},
	{"vzdump", classifyVzdump},
	{"proxmox-backup", classifyPBS},
}

// Builtins returns the built-in classifiers in the order they run.
func Builtins() []Builtin { return append([]Builtin(nil), builtins...) }

// Names returns the built-in classifiers' names.
func Names() []string {
	out := make([]string, len(builtins))
	for i, b := range builtins {
		out[i] = b.name
	}
	return out
}

// Chain returns the classifiers herald runs on a mail: the user's
// classifier sections (file order, disabled ones left out) first, then the
// built-ins not named in disable (herald.cfg's classifiers-disable, whose
// names config has checked).
func Chain(user []*config.Classifier, disable []string) []mailconv.Classifier {
	var chain []mailconv.Classifier
	for _, u := range user {
		if !u.Disable {
			chain = append(chain, User{u})
		}
	}
	for _, b := range builtins {
		if !slices.Contains(disable, b.name) {
			chain = append(chain, b)
		}
	}
	return chain
}

// setHost sets the hostname field to the short form of host (as Proxmox
// sets it: up to the first dot), when host looks like a host name. Else
// the field keeps herald's own name.
func setHost(ev *event.Event, host string) {
	host = strings.TrimSpace(host)
	host = strings.TrimSuffix(host, ".")
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	if !hostRe.MatchString(host) || strings.EqualFold(host, "localhost") {
		return
	}
	ev.SetField(event.FieldHostname, host)
}

var hostRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})$`)

// addrHost returns the domain of the first address in an address header
// value ("Name <user@host>", "user@host"), or "".
func addrHost(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	v = strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, '@'); i >= 0 {
		return v[i+1:]
	}
	return ""
}

// reportValue returns the value of the first body line of the form
// "  Key:   value" (leading blanks allowed, the key exactly as given), and
// whether there is one.
func reportValue(body, key string) (string, bool) {
	for rest := body; ; {
		i := strings.Index(rest, key+":")
		if i < 0 {
			return "", false
		}
		start := strings.LastIndexByte(rest[:i], '\n') + 1
		after := rest[i+len(key)+1:]
		end := strings.IndexByte(after, '\n')
		if end < 0 {
			end = len(after)
		}
		if strings.TrimLeft(rest[start:i], " \t") == "" {
			return strings.TrimSpace(after[:end]), true
		}
		rest = after
	}
}

// hasLine reports whether body has line as one whole line (blanks around
// it ignored).
func hasLine(body, line string) bool {
	for rest := body; ; {
		i := strings.Index(rest, line)
		if i < 0 {
			return false
		}
		start := strings.LastIndexByte(rest[:i], '\n') + 1
		end := i + len(line)
		next := strings.IndexByte(rest[end:], '\n')
		if next < 0 {
			next = len(rest) - end
		}
		if strings.TrimSpace(rest[start:i]) == "" && strings.TrimSpace(rest[end:end+next]) == "" {
			return true
		}
		rest = rest[end:]
	}
}

// head returns at most the first n bytes of s: the layouts the built-ins
// look for sit near the start of a body, and a bounded search keeps a
// megabyte of log cheap.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
