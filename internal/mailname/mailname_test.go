package mailname

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystem(t *testing.T) {
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
			if got := System(mn, hf, tt.short); got != want {
				t.Errorf("System = %q, want %q", got, want)
			}
		})
	}
}

func TestConfigValue(t *testing.T) {
	tests := []struct{ content, want string }{
		{"# x\nmail-name Host.Example.org.\n", "host.example.org"},
		{"mail-name bad!name\n", ""},
		{"relay x:25\n", ""},
		{"", ""}, // a missing file reads as nothing
	}
	for _, tt := range tests {
		if got := ConfigValue([]byte(tt.content)); got != tt.want {
			t.Errorf("ConfigValue(%q) = %q, want %q", tt.content, got, tt.want)
		}
	}
}

// FuzzParsers: whatever the files hold, a name that comes out is a valid,
// lower-case host name without a final dot.
func FuzzParsers(f *testing.F) {
	f.Add([]byte("127.0.1.1 pve1.example.com pve1 # me\n"), "pve1")
	f.Add([]byte("mail-name Host.Example.ORG.\n"), "x")
	f.Add([]byte("::1 localhost ip6-localhost\n\x00\xff pve1.\n"), "pve1")
	f.Fuzz(func(t *testing.T, data []byte, short string) {
		for _, got := range []string{FromHosts(data, short), ConfigValue(data)} {
			if got == "" {
				continue
			}
			if !Valid(got) || got != strings.ToLower(got) || strings.HasSuffix(got, ".") {
				t.Fatalf("parsed %q from %q", got, data)
			}
		}
	})
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"pve1.example.org": "pve1.example.org",
		"my_host-2":        "my_host-2",
		"bad host\n<x>":    "badhostx",
		"":                 "localhost",
		"ü\r\n":            "localhost",
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
