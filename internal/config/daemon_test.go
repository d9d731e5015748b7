package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDaemonDefaults(t *testing.T) {
	d, err := LoadDaemon(filepath.Join(t.TempDir(), "herald.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultDaemon()
	if !reflect.DeepEqual(d, want) {
		t.Errorf("missing file: %+v, want %+v", d, want)
	}
	if strings.Contains(d.Hostname, ".") || d.Hostname == "" {
		t.Errorf("hostname %q", d.Hostname)
	}
	if len(d.SMTPListen) != 2 || d.SMTPListen[0].String() != "127.0.0.1:25" || d.SMTPListen[1].String() != "[::1]:25" {
		t.Errorf("smtp-listen %v", d.SMTPListen)
	}
	if len(d.HTTPListen) != 1 || d.HTTPListen[0].String() != "127.0.0.1:8025" {
		t.Errorf("http-listen %v", d.HTTPListen)
	}
	if d.MaxMessageSize != 32<<20 || d.MaxRecipients != 100 || d.SMTPTimeout != 5*time.Minute ||
		d.MaxDeliveryAge != 120*time.Hour || d.DeliveryConcurrency != 16 || d.Flavor != FlavorPVE ||
		d.SpoolDir != "" || d.Relay != "" || len(d.SMTPAllow) != 0 {
		t.Errorf("defaults %+v", d)
	}
}

// TestDaemonExample proves the shipped example parses and, being all
// comments, yields the defaults; and that uncommenting every setting parses.
func TestDaemonExample(t *testing.T) {
	path := filepath.Join(testdataDir, "herald.cfg.example")
	d, err := LoadDaemon(path)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultDaemon()
	want.File = path
	if !reflect.DeepEqual(d, want) {
		t.Errorf("example: %+v, want defaults", d)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var uncommented []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "#") && len(l) > 1 && l[1] != ' ' {
			uncommented = append(uncommented, l[1:])
		}
	}
	d, err = ParseDaemon("all.cfg", []byte(strings.Join(uncommented, "\n")))
	if err != nil {
		t.Fatalf("uncommented example:\n%v", err)
	}
	for key := range daemonKeys {
		if !strings.Contains(string(data), "\n#"+key+" ") {
			t.Errorf("key %s is not documented in the example", key)
		}
	}
	if d.Hostname != "pve1" || d.Relay != "smtp.example.com:587" || d.NotificationsPrivFile != "/etc/pve/priv/notifications.cfg" {
		t.Errorf("uncommented: %+v", d)
	}
}

func TestDaemonParse(t *testing.T) {
	in := `# comment
  hostname   mail-gw
smtp-listen 127.0.0.1:2525
smtp-listen [::1]:2525
http-listen none
smtp-allow 192.0.2.7
smtp-allow 2001:db8::/32
smtp-allow 10.1.2.3/8
max-message-size 10K
max-recipients 5
max-header-size 64K
max-header-fields 500
smtp-timeout 90s
spool-dir /var/spool/herald/
notifications-file /etc/pve/notifications.cfg
flavor pbs
relay smtp.example.com:465
relay-username herald
relay-password-file /etc/herald/relay-pw
max-delivery-age 1d12h
delivery-concurrency 8
aliases-file /etc/herald/aliases
mailbox-helper /run/test/mbox.sock
`
	d, err := ParseDaemon("h.cfg", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Daemon{
		File:     "h.cfg",
		Hostname: "mail-gw",
		SMTPListen: []netip.AddrPort{
			netip.MustParseAddrPort("127.0.0.1:2525"), netip.MustParseAddrPort("[::1]:2525"),
		},
		SMTPAllow: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8"),
		},
		MaxMessageSize:      10240,
		MaxRecipients:       5,
		MaxHeaderSize:       64 << 10,
		MaxHeaderFields:     500,
		SMTPTimeout:         90 * time.Second,
		SpoolDir:            "/var/spool/herald",
		NotificationsFile:   "/etc/pve/notifications.cfg",
		Flavor:              FlavorPBS,
		Relay:               "smtp.example.com:465",
		RelayMode:           "tls",
		RelayUsername:       "herald",
		RelayPasswordFile:   "/etc/herald/relay-pw",
		MaxDeliveryAge:      36 * time.Hour,
		DeliveryConcurrency: 8,
		AliasesFile:         "/etc/herald/aliases",
		MailboxHelper:       "/run/test/mbox.sock",
		Limits:              DefaultLimits(),
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
}

func TestDaemonRelayModeDefault(t *testing.T) {
	for relay, mode := range map[string]string{"mx:25": "starttls", "mx:587": "starttls", "mx:465": "tls", "[2001:db8::1]:465": "tls"} {
		d, err := ParseDaemon("h.cfg", []byte("relay "+relay+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if d.RelayMode != mode {
			t.Errorf("%s: mode %s, want %s", relay, d.RelayMode, mode)
		}
	}
	d, err := ParseDaemon("h.cfg", []byte("relay mx:465\nrelay-mode insecure\n"))
	if err != nil || d.RelayMode != "insecure" {
		t.Errorf("explicit mode: %v %v", d, err)
	}
}

func TestDaemonErrors(t *testing.T) {
	in := `hostname bad_host!
smtp-listen localhost:25
smtp-listen 127.0.0.1
http-listen 127.0.0.1:99999
smtp-allow 300.1.1.1/8
max-message-size 0
max-message-size 1T
max-recipients many
smtp-timeout 5
spool-dir relative/spool
flavor proxmox
relay smtp.example.com:0
relay-mode ssl
max-delivery-age -1h
delivery-concurrency 0
listen 127.0.0.1:25
hostname
notifications-file /etc/pve/notifications.cfg
notifications-file /etc/pve/notifications.cfg
relay-password-file /run/pw
`
	_, err := ParseDaemon("h.cfg", []byte(in))
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("err = %v", err)
	}
	want := `h.cfg:1: invalid hostname "bad_host!": must be a host name
h.cfg:2: invalid smtp-listen "localhost:25": must be ADDRESS:PORT such as 127.0.0.1:25 or [::1]:25 (or none)
h.cfg:3: invalid smtp-listen "127.0.0.1": must be ADDRESS:PORT such as 127.0.0.1:25 or [::1]:25 (or none)
h.cfg:4: invalid http-listen "127.0.0.1:99999": must be ADDRESS:PORT such as 127.0.0.1:25 or [::1]:25 (or none)
h.cfg:5: invalid smtp-allow "300.1.1.1/8": must be an address or a CIDR prefix such as 192.0.2.0/24
h.cfg:6: invalid max-message-size "0": must be a positive size in bytes, optionally with K, M or G (powers of 1024)
h.cfg:7: duplicate setting 'max-message-size' (already set on line 6)
h.cfg:8: invalid max-recipients "many": must be a whole number from 1 to 100000
h.cfg:9: invalid smtp-timeout "5": must be a positive duration such as 90s, 5m, 2h or 5d
h.cfg:10: invalid spool-dir "relative/spool": must be an absolute path
h.cfg:11: invalid flavor "proxmox": must be pve or pbs
h.cfg:12: invalid relay "smtp.example.com:0": has an invalid port
h.cfg:13: invalid relay-mode "ssl": must be one of insecure, starttls, tls
h.cfg:14: invalid max-delivery-age "-1h": must be a positive duration such as 90s, 5m, 2h or 5d
h.cfg:15: invalid delivery-concurrency "0": must be a whole number from 1 to 1024
h.cfg:16: unknown setting 'listen'
h.cfg:17: 'hostname' has no value (write: key value)
h.cfg:19: duplicate setting 'notifications-file' (already set on line 18)
h.cfg:20: relay-password-file needs relay-username`
	if ds.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", ds.Error(), want)
	}
	_, err = ParseDaemon("h.cfg", []byte("relay-mode tls\nrelay-username u\n"))
	want = "h.cfg:1: relay-mode is set but relay is not\nh.cfg:2: relay-username needs relay-password-file\nh.cfg:2: relay-username is set but relay is not"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestParseDuration(t *testing.T) {
	tests := map[string]time.Duration{
		"5d": 120 * time.Hour, "1d12h": 36 * time.Hour, "90s": 90 * time.Second, "0d1m": time.Minute, "2h30m": 150 * time.Minute,
	}
	for in, want := range tests {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"d", "xd", "5", "1.5d", "5dd", ""} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseDaemon(f *testing.F) {
	f.Add([]byte("hostname a\nsmtp-listen 127.0.0.1:25\nrelay x:1\nmax-delivery-age 1d2h\n"))
	f.Add([]byte("# c\n\nmax-message-size 12G\nsmtp-allow ::1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseDaemon("h.cfg", data)
		if err == nil {
			return
		}
		var ds Diagnostics
		if !errors.As(err, &ds) {
			t.Fatalf("%T", err)
		}
		n := len(splitLines(data))
		for _, d := range ds {
			if d.Line < 1 || d.Line > n {
				t.Fatalf("line %d outside 1..%d: %v", d.Line, n, d)
			}
		}
	})
}
