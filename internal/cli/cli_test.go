package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

// The docs examples define their own matchers and no default-matcher, so
// Proxmox injects the built-in one, which sends everything to mail-to-root
// as well (docs/proxmox-notify.md §1.6).

var configTestdata = filepath.Join("..", "..", "testdata", "config")

// run calls Main in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append([]string{"herald"}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// configDir copies fixture NAME.cfg (and NAME.priv.cfg) into a fresh
// directory as notifications.cfg and notifications-priv.cfg (mode 600, as
// herald demands; git does not keep modes).
func configDir(t *testing.T, dir, name string) string {
	t.Helper()
	d := t.TempDir()
	pub, err := os.ReadFile(filepath.Join(dir, name+".cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "notifications.cfg"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if priv, err := os.ReadFile(filepath.Join(dir, name+".priv.cfg")); err == nil {
		if err := os.WriteFile(filepath.Join(d, "notifications-priv.cfg"), priv, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestCheckAcceptsProxmoxAndHeraldConfigs(t *testing.T) {
	for _, name := range []string{"pve-default", "pbs-default", "docs-sendmail", "docs-smtp", "docs-gotify",
		"docs-matcher-always", "docs-matcher-calendar", "docs-matcher-fields", "webhook-ntfy",
		"herald-targets", "legacy-group-filter", "heartbeats"} {
		t.Run(name, func(t *testing.T) {
			d := configDir(t, configTestdata, name)
			out, errs, code := run(t, "", "check", "--config-dir", d)
			if code != 0 {
				t.Fatalf("check exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			}
			if !strings.Contains(out, "configuration is valid") {
				t.Fatalf("stdout %q", out)
			}
		})
	}
}

// Every broken fixture is refused with exit 1 and its expected FILE:LINE
// messages (the golden .err files of internal/config, with the file names
// of the copy).
func TestCheckRejectsBrokenConfigs(t *testing.T) {
	broken := filepath.Join(configTestdata, "broken")
	errs, _ := filepath.Glob(filepath.Join(broken, "*.err"))
	if len(errs) < 10 {
		t.Fatalf("only %d broken fixtures found", len(errs))
	}
	for _, ef := range errs {
		name := strings.TrimSuffix(filepath.Base(ef), ".err")
		t.Run(name, func(t *testing.T) {
			want, _ := os.ReadFile(ef)
			d := configDir(t, broken, name)
			_, stderr, code := run(t, "", "check", "--config-dir", d)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			pub := filepath.Join(d, "notifications.cfg")
			priv := filepath.Join(d, "notifications-priv.cfg")
			for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				line = strings.ReplaceAll(line, name+".priv.cfg", priv)
				line = strings.ReplaceAll(line, name+".cfg", pub)
				if !strings.Contains(stderr, line) {
					t.Errorf("missing %q in\n%s", line, stderr)
				}
			}
		})
	}
}

func TestCheckWarnsAboutComments(t *testing.T) {
	d := t.TempDir()
	cfg := "# herald only\nsendmail: ops\n\tmailto ops@example.org\n"
	if err := os.WriteFile(filepath.Join(d, "notifications.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "", "check", "--config-dir", d)
	if code != 0 || !strings.Contains(stderr, "notifications.cfg:1: warning:") || !strings.Contains(stderr, "Proxmox") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestCheckMissingFileIsBuiltinsOnly(t *testing.T) {
	out, stderr, code := run(t, "", "check", "--config-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "1 targets, 1 matchers") {
		t.Fatalf("exit %d out %q err %q", code, out, stderr)
	}
}

func TestCheckPrivateFileModes(t *testing.T) {
	d := configDir(t, configTestdata, "docs-gotify")
	priv := filepath.Join(d, "notifications-priv.cfg")
	if err := os.Chmod(priv, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "", "check", "--config-dir", d)
	if code != 1 || !strings.Contains(stderr, "chmod 600") || !strings.Contains(stderr, priv) {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestConvertHTMLOnlyMail(t *testing.T) {
	out, stderr, code := run(t, "", "convert", filepath.Join("..", "..", "testdata", "mails", "truenas-html-only.eml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var ev event.Event
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("convert printed no event JSON: %v\n%s", err, out)
	}
	if ev.Body == "" || strings.Contains(ev.Body, "<td") || strings.Contains(ev.Body, "<html") || strings.Contains(ev.Body, "</") {
		t.Fatalf("HTML left in body:\n%s", ev.Body)
	}
	if ev.Fields["type"] != "system-mail" || ev.Severity != event.Unknown || ev.Title == "" {
		t.Fatalf("event %+v", ev)
	}
	// stdin works too.
	raw, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "mails", "cron.eml"))
	if out2, _, code := run(t, string(raw), "convert", "-"); code != 0 || !strings.Contains(out2, `"type": "cron"`) {
		t.Fatalf("convert -: %d %s", code, out2)
	}
}

type explained struct {
	Matchers []struct {
		Name    string
		Matched bool
		Rules   []struct {
			Rule    string
			Matched bool
		}
	}
	Targets        []string
	Event          event.Event
	Classifier     string
	Classification struct {
		Classifier string
		Set        map[string]string
	}
}

func explain(t *testing.T, dir string, ev string, extra ...string) explained {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ev.json")
	if err := os.WriteFile(f, []byte(ev), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "", append([]string{"explain", "--config-dir", dir, "--event", f}, extra...)...)
	if code != 0 {
		t.Fatalf("explain exit %d: %s", code, stderr)
	}
	var x explained
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return x
}

// Routing answers derived from docs/proxmox-notify.md, through the CLI.
func TestExplainProxmoxRouting(t *testing.T) {
	// The CLI evaluates calendars in local time; Go reads TZ once, so set
	// the zone directly.
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Local
	time.Local = vienna
	t.Cleanup(func() { time.Local = old })
	fields := configDir(t, configTestdata, "docs-matcher-fields")
	cal := configDir(t, configTestdata, "docs-matcher-calendar")
	pbs := configDir(t, configTestdata, "pbs-default")
	pve := configDir(t, configTestdata, "pve-default")
	cases := []struct {
		name, dir, ev string
		at            []string
		want          string
	}{
		{"backup failure", fields, `{"severity":"error","timestamp":"2026-11-21T10:00:00Z","fields":{"type":"vzdump"}}`, nil, "backup-admins,mail-to-root"},
		{"backup ok goes nowhere", fields, `{"severity":"info","timestamp":"2026-11-21T10:00:00Z","fields":{"type":"vzdump"}}`, nil, "mail-to-root"},
		{"fencing", fields, `{"severity":"error","timestamp":"2026-11-21T10:00:00Z","fields":{"type":"fencing"}}`, nil, "cluster-admins,mail-to-root"},
		// Friday 2026-11-20 10:00 Vienna = 09:00Z: working hours.
		{"workday", cal, `{"severity":"info","timestamp":"2026-11-20T09:00:00Z","fields":{"type":"x"}}`, nil, "admin,mail-to-root"},
		// Half-open: 17:00 local is outside.
		{"17:00 is after hours", cal, `{"severity":"info","timestamp":"2026-11-20T16:00:00Z","fields":{"type":"x"}}`, nil, "mail-to-root,on-call-admins"},
		{"--at overrides the timestamp", cal, `{"severity":"info","timestamp":"2026-11-20T09:00:00Z","fields":{"type":"x"}}`,
			[]string{"--at", "2026-11-21T12:00:00+01:00"}, "mail-to-root,on-call-admins"},
		{"pbs: successful prune excluded", pbs, `{"severity":"info","timestamp":"2026-11-21T10:00:00Z","fields":{"type":"prune"}}`, nil, ""},
		{"pbs: failed prune sent", pbs, `{"severity":"error","timestamp":"2026-11-21T10:00:00Z","fields":{"type":"prune"}}`, nil, "mail-to-root"},
		{"pve: everything to root", pve, `{"severity":"unknown","timestamp":"2026-11-21T10:00:00Z","fields":{"type":"system-mail"}}`, nil, "mail-to-root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := explain(t, c.dir, c.ev, c.at...)
			got := strings.Join(x.Targets, ",")
			if got != c.want {
				t.Fatalf("targets %q, want %q (matchers %+v)", got, c.want, x.Matchers)
			}
			if len(x.Matchers) == 0 {
				t.Fatal("no matcher explanation")
			}
		})
	}
}

// explain refuses what the daemon refuses: an event without fields.type
// (how such an event would route is covered by the router's own tests).
func TestExplainRefusesEventWithoutType(t *testing.T) {
	d := configDir(t, configTestdata, "docs-matcher-fields")
	f := filepath.Join(t.TempDir(), "ev.json")
	if err := os.WriteFile(f, []byte(`{"severity":"error","fields":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "", "explain", "--config-dir", d, "--event", f)
	if code != 65 || !strings.Contains(stderr, "fields.type is required") {
		t.Fatalf("exit %d, stderr %q; want 65 and the reason", code, stderr)
	}
}

func TestExplainMail(t *testing.T) {
	d := configDir(t, configTestdata, "pve-default")
	out, stderr, code := run(t, "", "explain", "--config-dir", d, "--mail", filepath.Join("..", "..", "testdata", "mails", "smartd.eml"))
	if code != 0 {
		t.Fatalf("exit %d %s", code, stderr)
	}
	var x explained
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatal(err)
	}
	if strings.Join(x.Targets, ",") != "mail-to-root" || x.Event.Fields["type"] != "smartd" || x.Classifier != "smartd" ||
		x.Event.Severity != event.Error || x.Event.Fields["failtype"] != "CurrentPendingSector" {
		t.Fatalf("%s", out)
	}
	if _, _, code := run(t, "", "explain", "--config-dir", d); code != 64 {
		t.Fatalf("explain without input: exit %d, want 64", code)
	}
}

// Secrets from the private file never reach check, explain or test output,
// nor any error message.
func TestSecretsNeverPrinted(t *testing.T) {
	d := t.TempDir()
	pub := `gotify: phone
	server http://127.0.0.1:1

smtp: relay
	server 127.0.0.1
	port 1
	mode insecure
	from-address herald@example.org
	username herald
	mailto ops@example.org

webhook: hook
	url http://127.0.0.1:1/{{ secrets.channel }}
	method post
	body e3sgbWVzc2FnZSB9fQ==

matcher: all
	target phone
	target relay
	target hook
`
	priv := `gotify: phone
	token GOTIFY-SECRET-TOKEN-123

smtp: relay
	password SMTP-SECRET-PASSWORD-456

webhook: hook
	secret name=channel,value=V0VCSE9PSy1TRUNSRVQtNzg5
`
	os.WriteFile(filepath.Join(d, "notifications.cfg"), []byte(pub), 0o644)
	os.WriteFile(filepath.Join(d, "notifications-priv.cfg"), []byte(priv), 0o600)
	secrets := []string{"GOTIFY-SECRET-TOKEN-123", "SMTP-SECRET-PASSWORD-456", "WEBHOOK-SECRET-789", "V0VCSE9PSy1TRUNSRVQtNzg5"}
	evf := filepath.Join(t.TempDir(), "ev.json")
	os.WriteFile(evf, []byte(`{"severity":"error","title":"t","fields":{"type":"x"}}`), 0o644)

	var all strings.Builder
	collect := func(args ...string) {
		out, errs, _ := run(t, "", args...)
		all.WriteString(out + errs)
	}
	collect("check", "--config-dir", d)
	collect("explain", "--config-dir", d, "--event", evf)
	for _, tg := range []string{"phone", "relay", "hook"} {
		collect("test", "--config-dir", d, tg) // every one fails: nothing listens on port 1
	}
	// A broken private file must not echo its lines either.
	os.WriteFile(filepath.Join(d, "notifications-priv.cfg"), []byte(priv+"\ngotify: phone\n\ttoken GOTIFY-SECRET-TOKEN-123\n\tbogus GOTIFY-SECRET-TOKEN-123\n"), 0o600)
	collect("check", "--config-dir", d)
	if !strings.Contains(all.String(), "FAILED") {
		t.Fatalf("the test sends were expected to fail:\n%s", all.String())
	}
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Errorf("secret %q printed:\n%s", s, all.String())
		}
	}
}

// The private file can come from a systemd credential instead of /etc.
func TestPrivateFileFromSystemdCredential(t *testing.T) {
	d := configDir(t, configTestdata, "docs-gotify")
	priv, _ := os.ReadFile(filepath.Join(d, "notifications-priv.cfg"))
	if err := os.Remove(filepath.Join(d, "notifications-priv.cfg")); err != nil {
		t.Fatal(err)
	}
	// Without it Proxmox does not instantiate the target: a warning, and
	// the target is left out.
	if out, stderr, code := run(t, "", "check", "--config-dir", d); code != 0 || !strings.Contains(stderr, "does not instantiate") ||
		!strings.Contains(out, "(1 targets,") {
		t.Fatalf("without the private part: exit %d %q %q", code, out, stderr)
	}
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "notifications-priv.cfg"), priv, 0o400); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	if out, stderr, code := run(t, "", "check", "--config-dir", d); code != 0 || !strings.Contains(out, "(2 targets,") {
		t.Fatalf("with the credential: exit %d %q %q", code, out, stderr)
	}
}

// A config dir that does not exist is an error for check: the admin named
// the wrong directory (the daemon still starts on built-ins, with a
// warning, as Proxmox reads missing files).
func TestCheckMissingConfigDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	out, stderr, code := run(t, "", "check", "--config-dir", missing)
	if code != 1 || out != "" || !strings.Contains(stderr, missing+": configuration directory does not exist") {
		t.Fatalf("exit %d out %q err %q", code, out, stderr)
	}
}

// A classifier section wins over the built-ins in explain and convert; a
// mail nothing recognises is explained as classifier "none"; a broken
// regex is a FILE:LINE error in check.
func TestClassifierSections(t *testing.T) {
	d := t.TempDir()
	cfg := "classifier: smart-override\n\tmatch-subject ^SMART error \\((?P<failtype>\\w+)\\)\n\ttype disk\n\tseverity warning\n\tfield team=storage\n"
	if err := os.WriteFile(filepath.Join(d, "notifications.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	smartd := filepath.Join("..", "..", "testdata", "mails", "smartd.eml")
	out, stderr, code := run(t, "", "explain", "--config-dir", d, "--mail", smartd)
	var x explained
	if code != 0 || json.Unmarshal([]byte(out), &x) != nil {
		t.Fatalf("exit %d %s %s", code, out, stderr)
	}
	if x.Classifier != "classifier:smart-override" || x.Event.Fields["type"] != "disk" || x.Event.Fields["team"] != "storage" ||
		x.Event.Fields["failtype"] != "CurrentPendingSector" || x.Event.Severity != event.Warning {
		t.Fatalf("explain: %s", out)
	}
	if fmt.Sprint(x.Classification.Set) != "map[failtype:CurrentPendingSector severity:warning team:storage type:disk]" {
		t.Errorf("explain says the classifier set %v", x.Classification.Set)
	}
	out, _, code = run(t, "", "convert", "--config-dir", d, smartd)
	if code != 0 || !strings.Contains(out, `"type": "disk"`) {
		t.Fatalf("convert: %d %s", code, out)
	}
	out, _, _ = run(t, "", "explain", "--config-dir", d, "--mail", filepath.Join("..", "..", "testdata", "mails", "latin1.eml"))
	if json.Unmarshal([]byte(out), &x) != nil || x.Classifier != "none" || x.Event.Fields["type"] != "system-mail" {
		t.Fatalf("explain of a personal mail: %s", out)
	}
	// classifiers-disable turns a built-in off.
	if err := os.WriteFile(filepath.Join(d, "herald.cfg"), []byte("classifiers-disable smartd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "notifications.cfg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, _ = run(t, "", "explain", "--config-dir", d, "--mail", smartd)
	if json.Unmarshal([]byte(out), &x) != nil || x.Classifier != "none" {
		t.Fatalf("explain with smartd disabled: %s", out)
	}
	if err := os.WriteFile(filepath.Join(d, "notifications.cfg"), []byte("classifier: bad\n\tmatch-body (unclosed\n\ttype x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, "", "check", "--config-dir", d)
	if code != 1 || !strings.Contains(stderr, "notifications.cfg:2: invalid match-body regular expression: missing closing ): `(unclosed`") {
		t.Fatalf("check: exit %d\n%s", code, stderr)
	}
}
