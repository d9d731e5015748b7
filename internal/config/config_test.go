package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/event"
)

func mustParse(t *testing.T, pub, priv string, opt LoadOptions) *Config {
	t.Helper()
	cfg, err := Parse("notifications.cfg", []byte(pub), "notifications-priv.cfg", []byte(priv), opt)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return cfg
}

func parseErr(t *testing.T, pub, priv string) Diagnostics {
	t.Helper()
	_, err := Parse("notifications.cfg", []byte(pub), "notifications-priv.cfg", []byte(priv), LoadOptions{})
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("Parse error = %v, want Diagnostics", err)
	}
	return ds
}

func TestEmptyConfigIsBuiltins(t *testing.T) {
	for _, flavor := range []Flavor{FlavorPVE, FlavorPBS} {
		t.Run(flavor.String(), func(t *testing.T) {
			cfg := mustParse(t, "", "", LoadOptions{Flavor: flavor})
			if len(cfg.Targets) != 1 || cfg.Targets[0].Name != "mail-to-root" || cfg.Targets[0].Type != "sendmail" {
				t.Fatalf("targets = %v", cfg.Targets)
			}
			mtr := cfg.Target("mail-to-root")
			if mtr.Origin != OriginBuiltin || mtr.File != BuiltinFile {
				t.Errorf("mail-to-root origin %q file %q", mtr.Origin, mtr.File)
			}
			if got := mtr.List("mailto-user"); len(got) != 1 || got[0] != "root@pam" {
				t.Errorf("mailto-user = %v", got)
			}
			if c, _ := mtr.Get("comment"); c != "Send mails to root@pam's email address" {
				t.Errorf("comment = %q", c)
			}
			m := cfg.Matcher("default-matcher")
			if m == nil || m.Origin != OriginBuiltin || m.Mode != "all" || len(m.Targets) != 1 || m.Targets[0] != "mail-to-root" {
				t.Fatalf("default-matcher = %+v", m)
			}
			if flavor == FlavorPVE {
				if m.HasRules() || m.Invert {
					t.Errorf("PVE default-matcher should match everything: %+v", m)
				}
			} else {
				if !m.Invert || len(m.Fields) != 1 || m.Fields[0].String() != "exact:type=prune" ||
					len(m.Severity) != 1 || m.Severity[0].String() != "info" {
					t.Errorf("PBS default-matcher = %+v", m)
				}
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("warnings: %v", cfg.Warnings)
			}
		})
	}
}

func TestBuiltinOrigin(t *testing.T) {
	tests := []struct {
		name        string
		flavor      Flavor
		pub         string
		wantTarget  string // origin of mail-to-root
		wantMatcher string // origin of default-matcher
	}{
		{"pve verbatim", FlavorPVE, BuiltinConfig(FlavorPVE), OriginBuiltin, OriginBuiltin},
		{"pbs verbatim", FlavorPBS, BuiltinConfig(FlavorPBS), OriginBuiltin, OriginBuiltin},
		// The same content in another order and indentation is still the built-in.
		{"pve reordered", FlavorPVE, "matcher: default-matcher\n\tcomment Route all notifications to mail-to-root\n\ttarget mail-to-root\n\tmode all\n", OriginBuiltin, OriginBuiltin},
		{"pve file under pbs", FlavorPBS, BuiltinConfig(FlavorPVE), OriginBuiltin, OriginModifiedBuiltin},
		{"disabled", FlavorPVE, "sendmail: mail-to-root\n\tcomment Send mails to root@pam's email address\n\tmailto-user root@pam\n\tdisable true\n", OriginModifiedBuiltin, OriginBuiltin},
		{"other recipient", FlavorPVE, "sendmail: mail-to-root\n\tmailto ops@example.com\n", OriginModifiedBuiltin, OriginBuiltin},
		{"matcher without mode", FlavorPVE, "matcher: default-matcher\n\ttarget mail-to-root\n", OriginBuiltin, OriginModifiedBuiltin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, tt.pub, "", LoadOptions{Flavor: tt.flavor})
			if got := cfg.Target("mail-to-root").Origin; got != tt.wantTarget {
				t.Errorf("mail-to-root origin = %q, want %q", got, tt.wantTarget)
			}
			if got := cfg.Matcher("default-matcher").Origin; got != tt.wantMatcher {
				t.Errorf("default-matcher origin = %q, want %q", got, tt.wantMatcher)
			}
			if len(cfg.Targets) != 1 || len(cfg.Matchers) != 1 {
				t.Errorf("built-ins injected twice: %d targets, %d matchers", len(cfg.Targets), len(cfg.Matchers))
			}
		})
	}
}

func TestUserSectionsAreUserCreated(t *testing.T) {
	cfg := mustParse(t, "sendmail: ops\n\tmailto ops@example.com\n\nmatcher: m1\n\ttarget ops\n", "", LoadOptions{})
	if o := cfg.Target("ops").Origin; o != OriginUserCreated {
		t.Errorf("ops origin = %q", o)
	}
	if o := cfg.Matcher("m1").Origin; o != OriginUserCreated {
		t.Errorf("m1 origin = %q", o)
	}
	// Built-ins are injected after the user's sections.
	if cfg.Targets[1].Name != "mail-to-root" || cfg.Matchers[1].Name != "default-matcher" {
		t.Errorf("order: %v / %v", cfg.Targets, cfg.Matchers)
	}
}

func TestGrammarDetails(t *testing.T) {
	pub := "sendmail:   spaced-id   \r\n" + // id trimmed, CRLF
		" \t mailto\t  a@example.com  \r\n" + // any leading whitespace, split at the first run
		"\tcomment  two  spaces inside\r\n" +
		"\tdisable YES\r\n" +
		"\r\n" +
		"   \t \n" + // whitespace-only lines are blank
		"matcher: m1\n" +
		"\ttarget spaced-id\n" +
		"\tinvert-match Off\n" +
		"\tmatch-field exact:type=a, b\n"
	cfg := mustParse(t, pub, "", LoadOptions{})
	s := cfg.Target("spaced-id")
	if s == nil {
		t.Fatalf("targets: %v", cfg.Targets)
	}
	if got := s.List("mailto"); len(got) != 1 || got[0] != "a@example.com" {
		t.Errorf("mailto = %q", got)
	}
	if c, _ := s.Get("comment"); c != "two  spaces inside" {
		t.Errorf("comment = %q", c)
	}
	if !s.Disabled() || s.LineOf("disable") != 4 || s.LineOf("nothing") != 0 || s.Line != 1 {
		t.Errorf("Disabled %v LineOf %d Line %d", s.Disabled(), s.LineOf("disable"), s.Line)
	}
	m := cfg.Matcher("m1")
	if m.Invert || m.Line != 7 {
		t.Errorf("matcher = %+v", m)
	}
	if !m.Fields[0].Match(&event.Event{Fields: map[string]string{"type": "b"}}) {
		t.Errorf("exact values not trimmed")
	}
}

func TestBooleans(t *testing.T) {
	for _, v := range []string{"1", "on", "yes", "true", "TRUE", "On", "Yes"} {
		cfg := mustParse(t, "sendmail: t1\n\tmailto a@b.c\n\tdisable "+v+"\n", "", LoadOptions{})
		if !cfg.Target("t1").Disabled() {
			t.Errorf("%q should be true", v)
		}
	}
	for _, v := range []string{"0", "off", "no", "false", "FALSE", "Off"} {
		cfg := mustParse(t, "sendmail: t1\n\tmailto a@b.c\n\tdisable "+v+"\n", "", LoadOptions{})
		if cfg.Target("t1").Disabled() {
			t.Errorf("%q should be false", v)
		}
	}
}

func TestCommentsWarn(t *testing.T) {
	pub := "# top\nsendmail: t1\n  # inside a section\n\tmailto a@example.com\n\n\t# between sections, indented\n"
	cfg := mustParse(t, pub, "", LoadOptions{})
	if len(cfg.Warnings) != 3 {
		t.Fatalf("warnings = %v", cfg.Warnings)
	}
	for i, line := range []int{1, 3, 6} {
		w := cfg.Warnings[i]
		want := fmt.Sprintf("notifications.cfg:%d: warning: comment lines are a herald extension; Proxmox cannot read this file any more", line)
		if w.Error() != want || !w.Warning {
			t.Errorf("warning %d = %q, want %q", i, w.Error(), want)
		}
	}
	// The comment inside the section did not end it.
	if got := cfg.Target("t1").List("mailto"); len(got) != 1 {
		t.Errorf("mailto = %v", got)
	}
}

func TestCollectsAllErrors(t *testing.T) {
	pub := "sendmail: t1\n\tmail-to x\n\tdisable maybe\n\nmatcher: m1\n\tmatch-severity bad\n\ttarget nobody\n\nbogus: x1\n\tk v\n"
	ds := parseErr(t, pub, "")
	want := []string{
		"notifications.cfg:1: warning: sendmail target 't1' has neither mailto nor mailto-user: it cannot send anything",
		"notifications.cfg:2: unknown property 'mail-to' for sendmail sections",
		`notifications.cfg:3: invalid disable "maybe": not a boolean (use 1, on, yes, true or 0, off, no, false)`,
		`notifications.cfg:6: invalid match-severity "bad": unknown severity "bad" (want info, notice, warning, error or unknown)`,
		"notifications.cfg:7: warning: matcher 'm1': target 'nobody' does not exist: skipped when sending, as Proxmox does",
		"notifications.cfg:9: unknown section type 'bogus' (known: " + knownTypes() + ")",
	}
	got := strings.Split(ds.Error(), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", ds.Error(), strings.Join(want, "\n"))
	}
}

func TestPrivateJoin(t *testing.T) {
	pub := "gotify: phone\n\tserver https://gotify.example.com\n\n" +
		"smtp: relay\n\tserver mail.example.com\n\tfrom-address h@example.com\n\n" +
		"smtp: open-relay\n\tserver mail.example.com\n\tfrom-address h@example.com\n\n" +
		"webhook: hook\n\turl https://example.com/{{ secrets.path }}\n\tmethod post\n" +
		"\theader name=Content-Type,value=YXBwbGljYXRpb24vanNvbg==\n\theader name=\"X-Quoted\",value=\"WWVz\"\n" +
		"\tbody eyJ0ZXh0Ijoie3sgbWVzc2FnZSB9fSJ9\n\n" +
		"ntfy: push\n\tserver https://ntfy.sh\n\ttopic t1\n"
	priv := "gotify: phone\n\ttoken gotify-token-1\n\n" +
		"smtp: relay\n\tpassword smtp-pass-1\n\n" +
		"smtp: open-relay\n\n" + // the API writes an empty private section
		"webhook: hook\n\tsecret name=path,value=c2VjcmV0LXBhdGg=\n\tsecret name=other,value=\n\n" +
		"ntfy: push\n\ttoken ntfy-token-1\n"
	cfg := mustParse(t, pub, priv, LoadOptions{})
	tok, ok := cfg.Target("phone").Secret("token")
	if !ok || tok.Reveal() != "gotify-token-1" {
		t.Errorf("gotify token = %v %v", ok, tok.Reveal())
	}
	if pw, ok := cfg.Target("relay").Secret("password"); !ok || pw.Reveal() != "smtp-pass-1" {
		t.Errorf("smtp password wrong")
	}
	if _, ok := cfg.Target("open-relay").Secret("password"); ok || !cfg.Target("open-relay").HasPrivate() {
		t.Errorf("open-relay: empty private section")
	}
	if tk, ok := cfg.Target("push").Secret("token"); !ok || tk.Reveal() != "ntfy-token-1" {
		t.Errorf("ntfy token wrong")
	}
	hook := cfg.Target("hook")
	secrets := hook.NamedSecrets("secret")
	if len(secrets) != 2 || secrets[0].Name != "path" || secrets[0].Value.Reveal() != "secret-path" ||
		secrets[1].Name != "other" || secrets[1].Value.Reveal() != "" {
		t.Errorf("webhook secrets = %d", len(secrets))
	}
	hs := hook.Headers()
	if len(hs) != 2 || hs[0] != (NameValue{"Content-Type", "application/json"}) || hs[1] != (NameValue{"X-Quoted", "Yes"}) {
		t.Errorf("headers = %+v", hs)
	}
	if body, ok := hook.Decoded("body"); !ok || body != `{"text":"{{ message }}"}` {
		t.Errorf("body = %q", body)
	}
	if hook.PrivFile != "notifications-priv.cfg" || hook.PrivLine != 9 {
		t.Errorf("priv location %s:%d", hook.PrivFile, hook.PrivLine)
	}
}

func TestPropertyStrings(t *testing.T) {
	tests := []struct {
		in, name, value, reason string
	}{
		{in: "name=a,value=WWVz", name: "a", value: "Yes"},
		{in: "value=WWVz,name=a", name: "a", value: "Yes"},
		{in: "name=a", name: "a", value: ""},
		{in: "name=a,value=", name: "a", value: ""},
		{in: `name="a,b",value="WWVz"`, name: "a,b", value: "Yes"},
		{in: `name="a\"b",value=WWVz`, name: `a"b`, value: "Yes"},
		{in: `name="a\\b",value=WWVz`, name: `a\b`, value: "Yes"},
		{in: "name=a,value=V2l0aCA9IHBhZGRpbmc=", name: "a", value: "With = padding"},
		{in: "name=a,", reason: "trailing ','"},
		{in: "name=a,,value=x", reason: `item "" has no '='`},
		{in: "a", reason: `item "a" has no '='`},
		{in: "", reason: `item "" has no '='`},
		{in: `name="unterminated`, reason: "unterminated quoted value"},
		{in: `name="a"x`, reason: "a quoted value must be followed by ',' or the end"},
		{in: "name=a,name=b", reason: "'name' given twice"},
		{in: "name=a,value=x,value=y", reason: "'value' given twice"},
		{in: "name=a,colour=red", reason: `unknown key "colour"`},
		{in: "value=WWVz", reason: "missing name="},
		{in: "name=,value=WWVz", reason: "missing name="},
		{in: "name=a,value=WWVz!", reason: "value is not valid base64"},
		{in: "name=a b,value=WWVz", reason: "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, value, reason := parseNameValue(tt.in, false)
			if tt.reason != "" {
				if !strings.Contains(reason, tt.reason) {
					t.Errorf("reason = %q, want %q", reason, tt.reason)
				}
				return
			}
			if reason != "" || name != tt.name || value != tt.value {
				t.Errorf("got %q %q %q", name, value, reason)
			}
		})
	}
}

func TestWebhookURLs(t *testing.T) {
	good := []string{
		"https://ntfy.sh/{{ secrets.channel }}", "http://example.com", "http://example.com:8080/x?y={{ title }}",
		"https://10.0.0.1/hook", "https://[::1]:8443/hook", "https://[fe80::1]/", "http://::1",
		"https://discord.com/api/webhooks/{{ secrets.token }}", "https://host_name.example/",
	}
	bad := map[string]string{
		"ftp://example.com/":        "must start with http:// or https://",
		"example.com":               "must start with http:// or https://",
		"https://":                  "has no host",
		"https:///path":             "has no host",
		"https://{{ host }}/x":      "the host part cannot be a template",
		"https://example.com:{{p}}": "the host part cannot be a template",
		"https://example.com:0/":    "has an invalid port",
		"https://example.com:/":     "has an empty port",
		"https://exa mple.com/":     "has an invalid host name",
		"https://user@example.com/": "the host must be followed by '/'",
		"https://example.com?x=1":   "the host must be followed by '/'",
		"https://[::1/x":            "unterminated [IPv6] host",
		"https://[1.2.3.4]/":        "invalid [IPv6] host",
	}
	for _, u := range good {
		if r := checkWebhookURL(u); r != "" {
			t.Errorf("%s: %s", u, r)
		}
	}
	for u, want := range bad {
		if r := checkWebhookURL(u); !strings.Contains(r, want) {
			t.Errorf("%s: reason %q, want %q", u, r, want)
		}
	}
}

func TestLegacyFilterSemantics(t *testing.T) {
	tests := []struct {
		filter string
		sev    event.Severity
		want   bool
	}{
		{"\tmode and\n", event.Info, true},  // neutral element of and
		{"\tmode or\n", event.Error, false}, // neutral element of or
		{"\tmode and\n\tinvert-match true\n", event.Info, false},
		{"\tmode or\n\tinvert-match true\n", event.Info, true},
		{"\tmin-severity warning\n", event.Notice, false},
		{"\tmin-severity warning\n", event.Warning, true},
		{"\tmin-severity warning\n", event.Error, true},
		{"\tmin-severity warning\n", event.Unknown, true}, // unknown sorts last
		{"\tmin-severity warning\n\tmode or\n", event.Error, true},
		{"\tmin-severity error\n\tinvert-match true\n", event.Error, false},
		{"\tmin-severity error\n\tinvert-match true\n", event.Warning, true},
	}
	for _, tt := range tests {
		cfg := mustParse(t, "filter: f1\n"+tt.filter, "", LoadOptions{})
		f := cfg.Filter("f1")
		if got := f.Match(&event.Event{Severity: tt.sev}); got != tt.want {
			t.Errorf("filter %q on %s = %v, want %v", tt.filter, tt.sev, got, tt.want)
		}
	}
}

func TestLoadLocations(t *testing.T) {
	const pub = "gotify: phone\n\tserver https://gotify.example.com\n"
	const priv = "gotify: phone\n\ttoken tok-123\n"
	write := func(t *testing.T, path, data string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("pbs layout", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "notifications.cfg"), pub, 0o644)
		write(t, filepath.Join(dir, "notifications-priv.cfg"), priv, 0o600)
		cfg, err := Load(dir, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.PrivateFile != filepath.Join(dir, "notifications-priv.cfg") {
			t.Errorf("PrivateFile = %s", cfg.PrivateFile)
		}
	})
	t.Run("pve layout via PublicPath", func(t *testing.T) {
		dir := t.TempDir()
		pve := filepath.Join(dir, "etc-pve")
		write(t, filepath.Join(pve, "notifications.cfg"), pub, 0o640)
		write(t, filepath.Join(pve, "priv", "notifications.cfg"), priv, 0o600)
		cfg, err := Load(filepath.Join(dir, "herald"), LoadOptions{PublicPath: filepath.Join(pve, "notifications.cfg")})
		if err != nil {
			t.Fatal(err)
		}
		if tok, _ := cfg.Target("phone").Secret("token"); tok.Reveal() != "tok-123" {
			t.Errorf("token not joined from priv/notifications.cfg")
		}
	})
	t.Run("explicit private path", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "a.cfg"), pub, 0o644)
		write(t, filepath.Join(dir, "b.cfg"), priv, 0o400)
		cfg, err := Load(dir, LoadOptions{PublicPath: filepath.Join(dir, "a.cfg"), PrivatePath: filepath.Join(dir, "b.cfg")})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.PublicFile != filepath.Join(dir, "a.cfg") || cfg.PrivateFile != filepath.Join(dir, "b.cfg") {
			t.Errorf("files %s %s", cfg.PublicFile, cfg.PrivateFile)
		}
	})
	t.Run("missing files mean built-ins", func(t *testing.T) {
		cfg, err := Load(filepath.Join(t.TempDir(), "nonexistent"), LoadOptions{Flavor: FlavorPBS})
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Targets) != 1 || cfg.Matcher("default-matcher") == nil || cfg.Flavor != FlavorPBS {
			t.Errorf("cfg = %+v", cfg)
		}
	})
	t.Run("two private files", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "notifications.cfg"), pub, 0o644)
		write(t, filepath.Join(dir, "notifications-priv.cfg"), priv, 0o600)
		write(t, filepath.Join(dir, "priv", "notifications.cfg"), priv, 0o600)
		_, err := Load(dir, LoadOptions{})
		want := filepath.Join(dir, "priv", "notifications.cfg") + ": ignored because " + filepath.Join(dir, "notifications-priv.cfg") + " exists: keep the secrets in one private file"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		t.Run(fmt.Sprintf("private file %04o", mode), func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "notifications.cfg"), pub, 0o644)
			pp := filepath.Join(dir, "notifications-priv.cfg")
			write(t, pp, priv, mode)
			_, err := Load(dir, LoadOptions{})
			want := fmt.Sprintf("%s: permissions %04o expose secrets: run chmod 600 %s", pp, mode, pp)
			if err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
			if err != nil && strings.Contains(err.Error(), "tok-123") {
				t.Errorf("secret in error")
			}
		})
	}
	t.Run("unreadable public file", func(t *testing.T) {
		dir := t.TempDir()
		// A directory where the file should be makes ReadFile fail without root tricks.
		if err := os.Mkdir(filepath.Join(dir, "notifications.cfg"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "notifications.cfg")+": cannot read: ") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("load errors carry the path as given", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "notifications.cfg"), "sendmail: a1\n\tmailto a@b.c\n\tbogus x\n", 0o644)
		_, err := Load(dir, LoadOptions{})
		want := filepath.Join(dir, "notifications.cfg") + ":3: unknown property 'bogus' for sendmail sections"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
	})
}

func TestSendmailPathLoop(t *testing.T) {
	dir := t.TempDir()
	shim := filepath.Join(dir, "bin", "herald-sendmail")
	if err := os.MkdirAll(filepath.Dir(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shim, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(dir, "sbin", "sendmail") // a hard link: another name, same file
	if err := os.MkdirAll(filepath.Dir(installed), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(shim, installed); err != nil {
		t.Fatal(err)
	}
	symlink := filepath.Join(dir, "sendmail-link")
	if err := os.Symlink(shim, symlink); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "real-mta")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string // "" = loads
	}{
		{shim, "sendmail-path points at herald's own sendmail shim: that would loop"},
		{symlink, "sendmail-path points at herald's own sendmail shim: that would loop (" + symlink + " resolves to " + shim + ")"},
		{installed, "sendmail-path points at herald's own sendmail shim: that would loop (" + installed + " is " + shim + ")"},
		{other, ""},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			pub := "sendmail: ext\n\tmailto a@example.com\n\tsendmail-path " + tt.path + "\n"
			cfg, err := Parse("n.cfg", []byte(pub), "p.cfg", nil, LoadOptions{ShimPaths: []string{shim}})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p, _ := cfg.Target("ext").Get("sendmail-path"); p != tt.path {
					t.Errorf("sendmail-path = %q", p)
				}
				return
			}
			if err == nil || err.Error() != "n.cfg:3: "+tt.want {
				t.Errorf("err = %v\nwant n.cfg:3: %s", err, tt.want)
			}
		})
	}
	t.Run("missing binary warns", func(t *testing.T) {
		pub := "sendmail: ext\n\tmailto a@example.com\n\tsendmail-path " + filepath.Join(dir, "nope") + "\n"
		cfg, err := Parse("n.cfg", []byte(pub), "p.cfg", nil, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Msg, "cannot be resolved") {
			t.Errorf("warnings = %v", cfg.Warnings)
		}
	})
}

// TestSecretsNeverLeak puts recognisable secrets in every secret slot and
// in malformed private lines, then looks for them in every printed form.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		token    = "TOKEN-d41d8cd98f00"
		password = "PASSWORD-9e107d9d372b"
		hookVal  = "HOOKSECRET-e4d909c290d0"
		ntfyTok  = "NTFYTOKEN-0cc175b9c0f1"
	)
	hookB64 := "SE9PS1NFQ1JFVC1lNGQ5MDljMjkwZDA=" // base64(hookVal)
	pub := "gotify: phone\n\tserver https://gotify.example.com\n\n" +
		"smtp: relay\n\tserver mail.example.com\n\tfrom-address h@example.com\n\tusername u1\n\n" +
		"webhook: hook\n\turl https://example.com/{{ secrets.k }}\n\tmethod post\n\n" +
		"ntfy: push\n\tserver https://ntfy.sh\n\ttopic t1\n"
	priv := "gotify: phone\n\ttoken " + token + "\n\n" +
		"smtp: relay\n\tpassword " + password + "\n\n" +
		"webhook: hook\n\tsecret name=k,value=" + hookB64 + "\n\n" +
		"ntfy: push\n\ttoken " + ntfyTok + "\n"
	secrets := []string{token, password, hookVal, hookB64, ntfyTok}
	assertClean := func(t *testing.T, what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s leaks %q:\n%s", what, sec, s)
			}
		}
	}

	cfg := mustParse(t, pub, priv, LoadOptions{})
	if tok, _ := cfg.Target("phone").Secret("token"); tok.Reveal() != token {
		t.Fatalf("token not loaded")
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		assertClean(t, "Config "+verb, fmt.Sprintf(verb, cfg))
		assertClean(t, "*Config "+verb, fmt.Sprintf(verb, *cfg))
		for _, s := range cfg.Targets {
			assertClean(t, "*Section "+verb, fmt.Sprintf(verb, s))
			assertClean(t, "Section "+verb, fmt.Sprintf(verb, *s))
			assertClean(t, "[]NamedSecret "+verb, fmt.Sprintf(verb, s.NamedSecrets("secret")))
			if sec, ok := s.Secret("token"); ok {
				assertClean(t, "Secret "+verb, fmt.Sprintf(verb, sec))
				assertClean(t, "*Secret "+verb, fmt.Sprintf(verb, &sec))
			}
		}
	}
	for _, v := range []any{cfg, *cfg, cfg.Targets, cfg.Target("hook").NamedSecrets("secret")} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		assertClean(t, "json", string(b))
	}
	sec, _ := cfg.Target("relay").Secret("password")
	if b, _ := sec.MarshalText(); string(b) != "<secret>" {
		t.Errorf("MarshalText = %s", b)
	}
	if sec.String() != "<secret>" || sec.GoString() != "<secret>" {
		t.Errorf("String/GoString leak")
	}

	// Malformed private files: the diagnostics must not quote the lines.
	broken := []string{
		"gotify: phone\n\t" + token + "\n",                                 // key without value
		"gotify: phone\n\t" + token + " " + password + "\n",                // unknown key
		"gotify: phone\n\ttoken " + token + "\n\ttoken " + password + "\n", // duplicate
		"gotify: phone\n\ttoken " + token + "\x01\n",                       // control character
		"webhook: hook\n\tsecret " + hookVal + "\n",                        // not a property string
		"webhook: hook\n\tsecret name=k,value=" + hookVal + "\n",           // not base64
		"webhook: hook\n\tsecret name=k," + hookVal + "=x\n",               // unknown key
		"webhook: hook\n\tsecret name=\"" + hookVal + "\n",                 // unterminated quote
		token + ": " + password + "\n",                                     // unknown type
		token + "\n",                                                       // not a header
		"\t" + token + "\n",                                                // property outside a section
		"gotify: phone\n" + token + "\n",                                   // not indented
		"sendmail: phone\n\tpassword " + password + "\n",                   // type without secrets
		"smtp: phone\n\tpassword " + password + "\n",                       // wrong type for the public section
		"gotify: " + "x\n\ttoken " + token + "\n",                          // invalid id
	}
	for i, p := range broken {
		_, err := Parse("n.cfg", []byte(pub), "p.cfg", []byte(p), LoadOptions{})
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		assertClean(t, fmt.Sprintf("diagnostics of case %d", i), err.Error())
		assertClean(t, fmt.Sprintf("diagnostics of case %d (%%#v)", i), fmt.Sprintf("%#v", err))
	}
}
