package config

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"herald/internal/event"
	"herald/internal/mailname"
	"herald/internal/match"
)

// kind says what a section type is for.
type kind int

const (
	kindTarget kind = iota
	kindMatcher
	kindGroup  // legacy (proxmox-notify 0.1/0.2)
	kindFilter // legacy (proxmox-notify 0.1/0.2)
	// kindHerald is one of herald's own non-target sections (classifier,
	// heartbeat, ...): Proxmox has no such type. Each is kept as a Section
	// (private part joined) in Config.Herald and handed to its type's build
	// hook, which turns it into typed config and reports problems.
	kindHerald
)

// check validates one value; it returns a reason ("" when valid). Reasons
// for private-file keys must not quote the value.
type check func(v string) string

// keyDef describes one property of a section type.
type keyDef struct {
	array    bool
	required bool
	check    check // nil: any text without control characters
}

// typeDef describes one section type.
type typeDef struct {
	kind kind
	keys map[string]keyDef
	// priv lists the keys of the same-named section in the private file;
	// nil means the type has no private part.
	priv map[string]keyDef
	// privRequired: Proxmox does not instantiate the target without its
	// private section (gotify, smtp, webhook; docs/proxmox-compat.md).
	privRequired bool
	// secretKeys are keys that belong in the private file; naming one in
	// the public file gets a hint instead of a bare "unknown property".
	secretKeys []string
	// build, for kindHerald types, converts a loaded section (private part
	// already joined) into typed config on cfg, reporting problems on d.
	// For a target type it is optional and only checks the section.
	build func(d diags, s *Section, cfg *Config)
}

func common(keys map[string]keyDef) map[string]keyDef {
	keys["comment"] = keyDef{check: checkComment}
	keys["disable"] = keyDef{check: checkBool}
	return keys
}

// sectionTypes is the schema of notifications.cfg and its private file:
// Proxmox's types (docs/proxmox-notify.md §1.4), the legacy group/filter sections
// (§2.6) and herald's own targets.
var sectionTypes = map[string]*typeDef{
	"sendmail": {kind: kindTarget, keys: common(map[string]keyDef{
		"mailto":        {array: true, check: checkMail},
		"mailto-user":   {array: true, check: checkMail},
		"from-address":  {check: checkMail},
		"author":        {},
		"filter":        {check: checkID},
		"sendmail-path": {check: checkAbsPath}, // herald: external MTA binary
	})},
	"smtp": {kind: kindTarget, keys: common(map[string]keyDef{
		"server":       {required: true, check: checkHost},
		"from-address": {required: true, check: checkMail},
		"port":         {check: checkPort},
		"mode":         {check: checkEnum("insecure", "starttls", "tls")},
		"username":     {},
		"mailto":       {array: true, check: checkMail},
		"mailto-user":  {array: true, check: checkMail},
		"author":       {},
	}), priv: map[string]keyDef{
		"password": {},
	}, privRequired: true, secretKeys: []string{"password"}},
	"gotify": {kind: kindTarget, keys: common(map[string]keyDef{
		"server": {required: true, check: checkHTTPURL},
		"filter": {check: checkID},
	}), priv: map[string]keyDef{
		"token": {required: true},
	}, privRequired: true, secretKeys: []string{"token"}},
	"webhook": {kind: kindTarget, keys: common(map[string]keyDef{
		"url":    {required: true, check: checkWebhookURL},
		"method": {required: true, check: checkEnum("post", "put", "get")},
		"header": {array: true, check: checkNameValue(false)},
		"body":   {check: checkBase64},
	}), priv: map[string]keyDef{
		"secret": {array: true, check: checkNameValue(true)},
	}, privRequired: true, secretKeys: []string{"secret"}},
	"ntfy": {kind: kindTarget, keys: common(map[string]keyDef{
		"server":   {required: true, check: checkHTTPURL},
		"topic":    {required: true, check: checkTopic},
		"priority": {check: checkIntRange(1, 5)},
		"tags":     {array: true, check: checkTag},
	}), priv: map[string]keyDef{
		"token": {},
	}, secretKeys: []string{"token", "password"}},
	"mbox": {kind: kindTarget, keys: common(map[string]keyDef{
		"path": {required: true, check: checkAbsPath},
	})},
	"file": {kind: kindTarget, keys: common(map[string]keyDef{
		"path": {required: true, check: checkAbsPath},
	})},
	"journal": {kind: kindTarget, keys: common(map[string]keyDef{
		"identifier": {check: checkIdentifier},
	})},
	"exec": {kind: kindTarget, keys: common(map[string]keyDef{
		"command": {required: true},
		"timeout": {check: checkDuration},
	})},
	"matcher": {kind: kindMatcher, keys: common(map[string]keyDef{
		"target":         {array: true, check: checkID},
		"match-severity": {array: true},
		"match-field":    {array: true},
		"match-calendar": {array: true},
		"mode":           {check: checkEnum("all", "any")},
		"invert-match":   {check: checkBool},
	})},
	"group": {kind: kindGroup, keys: map[string]keyDef{
		"endpoint": {array: true, required: true, check: checkID},
		"filter":   {check: checkID},
		"comment":  {check: checkComment},
	}},
	"filter": {kind: kindFilter, keys: map[string]keyDef{
		"min-severity": {check: checkSeverity},
		"mode":         {check: checkEnum("and", "or")},
		"invert-match": {check: checkBool},
		"comment":      {check: checkComment},
	}},
}

// registerType adds a section type to the schema. herald's own section
// types register themselves from their own files (init), so that each
// feature's schema lives beside its builder.
func registerType(name string, def *typeDef) {
	if _, dup := sectionTypes[name]; dup {
		panic("config: section type registered twice: " + name)
	}
	sectionTypes[name] = def
}

// knownTypes names the public section types, for messages: Proxmox's in
// their documented order, then herald's own in alphabetical order.
func knownTypes() string {
	names := []string{"sendmail", "smtp", "gotify", "webhook", "matcher", "group", "filter"}
	var own []string
	for n := range sectionTypes {
		if !slices.Contains(names, n) {
			own = append(own, n)
		}
	}
	slices.Sort(own)
	return strings.Join(append(names, own...), ", ")
}

// privTypeList names the types the private file knows, for messages.
func privTypeList() string {
	var names []string
	for n, def := range sectionTypes {
		if def.priv != nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// validID reports whether s is a SAFE_ID of 2 to 32 characters, the schema
// of section names and target references.
func validID(s string) bool {
	return len(s) >= 2 && len(s) <= 32 && match.SafeID(s)
}

const idRule = "names are 2 to 32 characters of A-Z a-z 0-9 _ . - and do not start with . or -"

func checkID(v string) string {
	if !validID(v) {
		return idRule
	}
	return ""
}

func hasControl(v string) bool {
	return strings.ContainsFunc(v, unicode.IsControl)
}

func checkComment(v string) string {
	if n := utf8.RuneCountInString(v); n > 128 {
		return fmt.Sprintf("at most 128 characters (this one has %d)", n)
	}
	return ""
}

// checkMail follows Proxmox's EMAIL_SCHEMA / USER_SCHEMA: 2 to 64
// characters, not validated as an address.
func checkMail(v string) string {
	if n := utf8.RuneCountInString(v); n < 2 || n > 64 {
		return "must be 2 to 64 characters"
	}
	return ""
}

// parseBool accepts Proxmox's spellings, case-insensitively.
func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return true, true
	case "0", "off", "no", "false":
		return false, true
	}
	return false, false
}

func checkBool(v string) string {
	if _, ok := parseBool(v); !ok {
		return "not a boolean (use 1, on, yes, true or 0, off, no, false)"
	}
	return ""
}

func checkEnum(allowed ...string) check {
	return func(v string) string {
		for _, a := range allowed {
			if v == a {
				return ""
			}
		}
		return "must be one of " + strings.Join(allowed, ", ")
	}
}

func checkIntRange(lo, hi int) check {
	return func(v string) string {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Sprintf("must be a whole number from %d to %d", lo, hi)
		}
		return ""
	}
}

var checkPort = checkIntRange(1, 65535)

func checkSeverity(v string) string {
	if _, err := event.ParseSeverity(v); err != nil {
		return "must be one of info, notice, warning, error, unknown"
	}
	return ""
}

// checkHost accepts a DNS name or an IP address (Proxmox's
// DNS_NAME_OR_IP_SCHEMA for the smtp server).
func checkHost(v string) string {
	if strings.Contains(v, "://") {
		return "must be a host name or IP address, not a URL (set the port with 'port' and TLS with 'mode')"
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return ""
	}
	if !validDNSName(v) {
		return "must be a host name or IP address"
	}
	return ""
}

// validDNSName reports whether v is a DNS host name: the one rule herald
// uses for host names everywhere (mailname.Valid).
func validDNSName(v string) bool { return mailname.Valid(v) }

func checkHTTPURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be an http:// or https:// URL"
	}
	return ""
}

// checkWebhookURL follows Proxmox's HTTP_URL_SCHEMA loosely: http or https,
// a literal host (only path and query may hold {{ templates }}), no
// control characters.
func checkWebhookURL(v string) string {
	var rest string
	switch {
	case strings.HasPrefix(v, "http://"):
		rest = v[len("http://"):]
	case strings.HasPrefix(v, "https://"):
		rest = v[len("https://"):]
	default:
		return "must start with http:// or https://"
	}
	hostport, _, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(hostport, "{}") {
		return "the host part cannot be a template (only the path and query can)"
	}
	if hostport == "" {
		return "has no host"
	}
	if strings.ContainsAny(hostport, "?#@") {
		return "the host must be followed by '/' before any query, fragment or credentials"
	}
	if _, err := netip.ParseAddr(hostport); err == nil {
		return "" // a bare IPv6 address, as Proxmox allows
	}
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.Index(hostport, "]")
		if end < 0 {
			return "has an unterminated [IPv6] host"
		}
		if a, err := netip.ParseAddr(hostport[1:end]); err != nil || !a.Is6() {
			return "has an invalid [IPv6] host"
		}
		host, port = "", hostport[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return "has an invalid host"
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(hostport, ":") {
			return "has an empty port"
		}
	} else if h, p, ok := strings.Cut(hostport, ":"); ok {
		host, port = h, p
		if port == "" {
			return "has an empty port"
		}
	}
	if host != "" && !validDNSName(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			return "has an invalid host name"
		}
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "has an invalid port"
		}
	}
	return ""
}

func checkBase64(v string) string {
	if _, err := base64.StdEncoding.DecodeString(v); err != nil {
		return "not valid base64"
	}
	return ""
}

// parseNameValue parses a Proxmox property string "name=N,value=BASE64":
// comma-separated key=value items split at the first '=', values optionally
// double-quoted with \" and \\ escapes; value is base64 and may be absent.
// With secret set, reasons never quote the input.
func parseNameValue(v string, secret bool) (name, value string, reason string) {
	items, reason := splitPropertyString(v, secret)
	if reason != "" {
		return "", "", reason
	}
	var haveName, haveValue bool
	for _, it := range items {
		switch it[0] {
		case "name":
			if haveName {
				return "", "", "'name' given twice"
			}
			name, haveName = it[1], true
		case "value":
			if haveValue {
				return "", "", "'value' given twice"
			}
			value, haveValue = it[1], true
		default:
			if secret {
				return "", "", "unknown key (expected name=NAME,value=BASE64)"
			}
			return "", "", fmt.Sprintf("unknown key %q (expected name=NAME,value=BASE64)", it[0])
		}
	}
	if !haveName || name == "" {
		return "", "", "missing name= (expected name=NAME,value=BASE64)"
	}
	if hasControl(name) || strings.ContainsAny(name, " :") {
		return "", "", "invalid name"
	}
	dec, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return "", "", "value is not valid base64"
	}
	return name, string(dec), ""
}

// splitPropertyString splits "k=v,k2="quoted, v"" into key/value pairs.
func splitPropertyString(s string, secret bool) ([][2]string, string) {
	var out [][2]string
	i := 0
	for i <= len(s) {
		eq := strings.IndexAny(s[i:], "=,")
		if eq < 0 || s[i+eq] == ',' {
			if secret {
				return nil, "an item has no '=' (expected name=NAME,value=BASE64)"
			}
			end := len(s)
			if eq >= 0 {
				end = i + eq
			}
			return nil, fmt.Sprintf("item %q has no '=' (expected name=NAME,value=BASE64)", s[i:end])
		}
		key := s[i : i+eq]
		i += eq + 1
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, "unterminated quoted value"
			}
			if i < len(s) && s[i] != ',' {
				return nil, "a quoted value must be followed by ',' or the end"
			}
		} else {
			end := strings.IndexByte(s[i:], ',')
			if end < 0 {
				end = len(s) - i
			}
			val.WriteString(s[i : i+end])
			i += end
		}
		out = append(out, [2]string{key, val.String()})
		if i >= len(s) {
			break
		}
		i++ // skip ','
		if i == len(s) {
			return nil, "trailing ','"
		}
	}
	return out, ""
}

func checkNameValue(secret bool) check {
	return func(v string) string {
		_, _, reason := parseNameValue(v, secret)
		return reason
	}
}

func checkAbsPath(v string) string {
	if !filepath.IsAbs(v) {
		return "must be an absolute path"
	}
	return ""
}

func checkDuration(v string) string {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return "must be a positive duration such as 30s or 2m"
	}
	return ""
}

// checkTopic follows ntfy's topic rule: 1 to 64 of A-Z a-z 0-9 _ -.
func checkTopic(v string) string {
	if len(v) > 64 {
		return "at most 64 characters"
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "ntfy topics are letters, digits, '_' and '-'"
		}
	}
	return ""
}

func checkTag(v string) string {
	if strings.Contains(v, ",") {
		return "one tag per line (no commas)"
	}
	return ""
}

// checkIdentifier accepts a syslog identifier: no spaces.
func checkIdentifier(v string) string {
	if strings.ContainsFunc(v, unicode.IsSpace) {
		return "must not contain spaces"
	}
	return ""
}
