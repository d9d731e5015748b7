package config

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFromAddress(t *testing.T) {
	tests := []struct {
		in, name, addr, err string
	}{
		{"root", "", "root", ""},
		{"pve@example.com", "", "pve@example.com", ""},
		{"Proxmox VE <pve@example.com>", "Proxmox VE", "pve@example.com", ""},
		{`"PVE, node 1" <pve@example.com>`, "PVE, node 1", "pve@example.com", ""},
		{"<pve@example.com>", "", "pve@example.com", ""},
		{"<FROM_ADDRESS>", "", "", "placeholder"},
		{"<root>", "", "", "placeholder"},
		{"Proxmox VE", "", "", "not an address"},
		{"a <b@c", "", "", "not an address"},
	}
	for _, tc := range tests {
		name, addr, err := ParseFromAddress(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseFromAddress(%q) = %q, %q, %v; want error %q", tc.in, name, addr, err, tc.err)
			}
			continue
		}
		if err != nil || name != tc.name || addr != tc.addr {
			t.Errorf("ParseFromAddress(%q) = %q, %q, %v; want %q, %q", tc.in, name, addr, err, tc.name, tc.addr)
		}
	}
}

// TestLenientIsolatesTargets: the daemon's start-up load disables a target
// with an error (its deliveries then fail with the reason) and ignores a
// section of an unknown type, but still refuses a matcher whose rule does
// not parse or a problem that belongs to no section. The strict load
// (check, reload) refuses all of them.
func TestLenientIsolatesTargets(t *testing.T) {
	const good = "sendmail: ok1\n\tmailto a@example.com\n\nmatcher: m1\n\ttarget ok1\n\ttarget bad1\n"
	tests := []struct {
		name, pub, priv string
		broken          string // target expected broken; "" = none
		fatal           string // error expected even when lenient
	}{
		{"unknown key in a target", good + "\nwebhook: bad1\n\turl https://example.com/\n\tmethod post\n\tbogus 1\n", "webhook: bad1\n", "bad1", ""},
		{"missing required key", good + "\nsmtp: bad1\n\tfrom-address a@example.com\n", "smtp: bad1\n", "bad1", ""},
		{"bad value", good + "\nmbox: bad1\n\tpath relative/path\n", "", "bad1", ""},
		{"bad private value", good + "\nwebhook: bad1\n\turl https://example.com/\n\tmethod post\n", "webhook: bad1\n\tsecret nonsense\n", "bad1", ""},
		{"unknown section type", good + "\nfancy: bad1\n\tk v\n", "", "", ""},
		{"bad matcher rule", good + "\nmatcher: m2\n\tmatch-severity fatal\n", "", "", "match-severity"},
		{"broken header", good + "\n!!!\n", "", "", "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse("pub.cfg", []byte(tc.pub), "priv.cfg", []byte(tc.priv), LoadOptions{}); err == nil {
				t.Fatal("the strict load accepted the file")
			}
			cfg, err := Parse("pub.cfg", []byte(tc.pub), "priv.cfg", []byte(tc.priv), LoadOptions{Lenient: true})
			if tc.fatal != "" {
				var ds Diagnostics
				if err == nil || !errors.As(err, &ds) || !strings.Contains(ds.Errors().Error(), tc.fatal) {
					t.Fatalf("lenient load = %v, want an error about %s", err, tc.fatal)
				}
				return
			}
			if err != nil {
				t.Fatalf("lenient load refused the file: %v", err)
			}
			if cfg.Target("ok1") == nil {
				t.Error("the sound target is gone")
			}
			if tc.broken == "" {
				if len(cfg.Broken) != 0 {
					t.Errorf("broken %v, want none", cfg.Broken)
				}
				return
			}
			reason, ok := cfg.BrokenReason(tc.broken)
			if !ok || !strings.Contains(reason, "pub.cfg:") && !strings.Contains(reason, "priv.cfg:") {
				t.Errorf("BrokenReason(%s) = %q, %v; want the problem with FILE:LINE", tc.broken, reason, ok)
			}
			if tc.priv != "" && strings.Contains(reason, "nonsense") {
				t.Errorf("the reason quotes the private file: %q", reason)
			}
			if !strings.Contains(cfg.Warnings.Error(), "(target '"+tc.broken+"' disabled)") {
				t.Errorf("warnings do not say the target is disabled:\n%v", cfg.Warnings)
			}
		})
	}
}
