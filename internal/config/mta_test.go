package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemMailName(t *testing.T) {
	host, _ := os.Hostname()
	if strings.Contains(host, ".") {
		t.Logf("host name %q is qualified: the hosts-file cases check the host name instead", host)
	}
	tests := []struct {
		name, mailname, hosts, short, want string
	}{
		{"mailname wins", "mx.example.org\n", "127.0.1.1 pve1.example.com pve1\n", "pve1", "mx.example.org"},
		{"mailname folded", "MX.Example.ORG.\n", "", "pve1", "mx.example.org"},
		{"bad mailname ignored", "not a name!\n", "127.0.1.1 pve1.example.com pve1\n", "pve1", "pve1.example.com"},
		{"hosts canonical name", "", "# c\n127.0.0.1 localhost\n127.0.1.1 pve1.example.com pve1 # me\n", "pve1", "pve1.example.com"},
		{"hosts alias order", "", "127.0.1.1 pve1.lan.example.com pve1.lan pve1\n", "pve1", "pve1.lan.example.com"},
		{"hosts without domain", "", "127.0.1.1 pve1\n", "pve1", "pve1"},
		{"nothing", "", "", "pve1", "pve1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mn, hf := filepath.Join(dir, "mailname"), filepath.Join(dir, "hosts")
			if tt.mailname != "" {
				os.WriteFile(mn, []byte(tt.mailname), 0o644)
			}
			if tt.hosts != "" {
				os.WriteFile(hf, []byte(tt.hosts), 0o644)
			}
			want := tt.want
			if tt.mailname == "" || tt.name == "bad mailname ignored" {
				if strings.Contains(host, ".") {
					want = strings.ToLower(host)
				}
			}
			if got := SystemMailName(mn, hf, tt.short); got != want {
				t.Errorf("SystemMailName = %q, want %q", got, want)
			}
		})
	}
}

func TestMTAKeys(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
		check   func(d *Daemon) bool
	}{
		{in: "mail-name Host.Example.COM.\n", check: func(d *Daemon) bool {
			return d.MailName == "host.example.com" && d.ResolvedMailName() == "host.example.com"
		}},
		{in: "mail-name host\n", wantErr: `h.cfg:1: invalid mail-name "host": must be a fully qualified host name such as host.example.com`},
		{in: "relay smtp.example.com\n", check: func(d *Daemon) bool { return d.Relay == "smtp.example.com" && d.RelayMode == "starttls" }},
		{in: "relay [2001:db8::1]\nrelay-mode tls\n", check: func(d *Daemon) bool { return d.Relay == "[2001:db8::1]" && d.RelayMode == "tls" }},
		{in: "relay smtp.example.com:465\nrelay-ca-file /etc/ssl/ca.pem\nrelay-verify no\n", check: func(d *Daemon) bool {
			return d.RelayMode == "tls" && d.RelayCAFile == "/etc/ssl/ca.pem" && d.RelayNoVerify
		}},
		{in: "relay-verify maybe\n", wantErr: "h.cfg:1: invalid relay-verify \"maybe\": must be yes or no\nh.cfg:1: relay-verify is set but relay is not"},
		{in: "relay-ca-file ca.pem\n", wantErr: "h.cfg:1: invalid relay-ca-file \"ca.pem\": must be an absolute path\nh.cfg:1: relay-ca-file is set but relay is not"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseDaemon("h.cfg", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(d) {
				t.Errorf("unexpected settings %+v", d)
			}
		})
	}
}
