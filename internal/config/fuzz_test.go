package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(pveDefaultConfig), []byte(""))
	f.Add([]byte(pbsDefaultConfig), []byte(""))
	f.Add([]byte("gotify: phone\n\tserver https://g.example.com\n"), []byte("gotify: phone\n\ttoken t\n"))
	f.Add([]byte("webhook: ntfy\n\tbody YGBgCnt7IG1lc3NhZ2UgfX0KYGBg\n\theader name=Markdown,value=WWVz\n\tmethod post\n\turl https://ntfy.sh/{{ secrets.channel }}\n"),
		[]byte("webhook: ntfy\n\tsecret name=channel,value=bXljaGFubmVs\n"))
	f.Add([]byte("# c\nsendmail: a1\n\tmailto x@y.z\nmatcher: m\n\ttarget a1\n\tmatch-calendar mon-fri 9-17\n"), []byte(""))
	f.Add([]byte("group: g1\n\tendpoint mail-to-root\n\tfilter f1\n\nfilter: f1\n\tmin-severity warning\n"), []byte(""))
	f.Add([]byte("matcher: mail-to-root\n\ttarget x\n"), []byte("smtp: a\r\n\tpassword\r\n"))
	f.Fuzz(func(t *testing.T, pub, priv []byte) {
		cfg, err := Parse("pub.cfg", pub, "priv.cfg", priv, LoadOptions{})
		if err != nil {
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("error %T is not Diagnostics: %v", err, err)
			}
			if !ds.HasErrors() {
				t.Fatalf("error without an error diagnostic: %v", ds)
			}
			lines := map[string]int{"pub.cfg": len(splitLines(pub)), "priv.cfg": len(splitLines(priv))}
			for _, d := range ds {
				n, ok := lines[d.File]
				if !ok || d.Line < 1 || d.Line > n {
					t.Fatalf("diagnostic %q outside the input (%d lines)", d.Error(), n)
				}
			}
			return
		}
		for _, w := range cfg.Warnings {
			if !w.Warning {
				t.Fatalf("error among the warnings: %v", w)
			}
		}
		// A matcher may name a missing target (Proxmox skips it when
		// sending), but never without a warning that says so.
		for _, m := range cfg.Matchers {
			for _, name := range m.Targets {
				if cfg.Target(name) == nil && cfg.Group(name) == nil &&
					!slices.ContainsFunc(cfg.Warnings, func(w Diagnostic) bool { return strings.Contains(w.Msg, "'"+name+"'") }) {
					t.Fatalf("matcher %s names %s, which does not exist, without a warning", m.Name, name)
				}
			}
		}
		// What Proxmox loads, the daemon's lenient load loads too.
		if _, err := Parse("pub.cfg", pub, "priv.cfg", priv, LoadOptions{Lenient: true}); err != nil {
			t.Fatalf("lenient load refused what the strict one accepts: %v", err)
		}
		if cfg.Target("mail-to-root") == nil && cfg.Matcher("mail-to-root") == nil && cfg.Group("mail-to-root") == nil && cfg.Filter("mail-to-root") == nil {
			t.Fatalf("built-in mail-to-root missing")
		}
	})
}
