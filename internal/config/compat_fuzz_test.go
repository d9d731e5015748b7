package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseFromAddress: never panics; an accepted address holds no white
// space, angle brackets or control characters, whatever the input.
func FuzzParseFromAddress(f *testing.F) {
	for _, s := range []string{"root", "pve@example.com", "Proxmox VE <pve@example.com>", "<FROM_ADDRESS>",
		`"a, b" <x@y.z>`, "a <b@c", "=?utf-8?q?J=C3=B6rg?= <j@example.com>", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, addr, err := ParseFromAddress(in)
		if err != nil {
			return
		}
		if addr == "" || strings.ContainsAny(addr, " \t\r\n<>") {
			t.Fatalf("ParseFromAddress(%q) accepted address %q", in, addr)
		}
	})
}

// FuzzLoadDatacenter: any file content loads without panicking, and the
// values it yields are single trimmed lines.
func FuzzLoadDatacenter(f *testing.F) {
	f.Add("email_from: a@b.c\nhttp_proxy: http://127.0.0.1:3128\n")
	f.Add("email-from: x\nhttp-proxy:\n")
	f.Add("keyboard: en-us\nemail_from:   \n")
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(t.TempDir(), "datacenter.cfg")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		dc, err := LoadDatacenter(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{dc.EmailFrom, dc.HTTPProxy} {
			if v != strings.TrimSpace(v) || strings.Contains(v, "\n") {
				t.Fatalf("value %q from %q", v, content)
			}
		}
	})
}
