package config

import (
	"testing"
)

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
