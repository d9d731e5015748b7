package aliases

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = `# /etc/aliases
postmaster: root
Root: admin@example.com, ops

# comments may sit inside an entry
ops: ops1@example.com,
# between continuation lines
  ops2@example.com
	, ops1@example.com
keep: keep, other@example.com
plain: \root
tool: |/usr/bin/procmail, "|/bin/true", /var/log/mail.copy, :include:/etc/list, admin@example.com
onlypipe: |/usr/bin/logger
host: root@pve1, root@pve1.example.com, user@elsewhere.example
`

func local(host string) func(string) (string, bool) {
	return func(a string) (string, bool) { return LocalName(a, host) }
}

func TestExpand(t *testing.T) {
	tab, probs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var errs []Problem
	for _, p := range probs {
		if !p.Warning {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %+v", errs)
	}
	tests := []struct {
		addr string
		want []string
	}{
		{"postmaster", []string{"admin@example.com", "ops1@example.com", "ops2@example.com"}},
		{"postmaster@localhost", []string{"admin@example.com", "ops1@example.com", "ops2@example.com"}},
		{"ROOT@pve1", []string{"admin@example.com", "ops1@example.com", "ops2@example.com"}},
		{"root@other.example", []string{"root@other.example"}},
		{"nobody-here", []string{"nobody-here"}},
		{"keep", []string{"keep", "other@example.com"}},
		{"plain", []string{"root"}},
		{"tool", []string{"admin@example.com"}},
		{"onlypipe", nil},
		{"host", []string{"admin@example.com", "ops1@example.com", "ops2@example.com", "user@elsewhere.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			got, err := tab.Expand(tc.addr, local("pve1.example.com"))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Expand(%q) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}

func TestSkippedEntriesReported(t *testing.T) {
	_, probs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var skipped []string
	for _, p := range probs {
		if p.Warning && strings.Contains(p.Msg, "is skipped") {
			skipped = append(skipped, p.Msg)
		}
	}
	// tool: two commands, one file, one include; onlypipe: one command.
	if len(skipped) != 5 {
		t.Fatalf("skipped entries reported: %d, want 5: %q", len(skipped), skipped)
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Problem
	}{
		{"no colon", "a: b\nbad line without colon\n", []Problem{{Line: 2, Msg: "expected NAME: ADDRESS, ... (no colon)"}}},
		{"empty", "a:\n", []Problem{{Line: 1, Msg: "alias a has no recipients"}}},
		{"leading continuation", "  x@y\n", []Problem{{Line: 1, Msg: "continuation line without an alias before it"}}},
		{"quote", "a: \"|cmd\n", []Problem{{Line: 1, Msg: "unterminated double quote"}}},
		{"bad name", "a b: c\n", []Problem{{Line: 1, Msg: `invalid alias name "a b"`}}},
		{"bad address", "a: <x@y>\n", []Problem{{Line: 1, Msg: `invalid address "<x@y>"`}}},
		{"duplicate", "a: b\nA: c\n", []Problem{{Line: 2, Warning: true, Msg: "duplicate alias a (first defined on line 1, which is used)"}}},
		{"loop", "loop1: loop2\nloop2: loop1\n", []Problem{
			{Line: 1, Msg: "alias loop: loop1 → loop2 → loop1"},
			{Line: 2, Msg: "alias loop: loop2 → loop1 → loop2"},
		}},
		{"into a loop", "x: a@b, l1\nl1: l2\nl2: l1\n", []Problem{
			{Line: 1, Msg: "alias loop: x → l1 → l2 → l1"},
			{Line: 2, Msg: "alias loop: l1 → l2 → l1"},
			{Line: 3, Msg: "alias loop: l2 → l1 → l2"},
		}},
		{"self is no loop", "root: root, a@b\n", nil},
		{"control", "a: b\x01c\n", []Problem{{Line: 1, Msg: "control character in entry"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, probs, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(probs, tc.want) {
				t.Fatalf("problems = %+v\nwant %+v", probs, tc.want)
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	var b strings.Builder
	for i := 0; i < maxDepth+2; i++ {
		b.WriteString("a" + string(rune('a'+i)) + ": a" + string(rune('a'+i+1)) + "\n")
	}
	tab, probs, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) == 0 || !strings.Contains(probs[0].Msg, "nests deeper") {
		t.Fatalf("want a nesting error first, got %+v", probs)
	}
	_, err = tab.Expand("aa", bareLocal)
	var le *LoopError
	if !errors.As(err, &le) {
		t.Fatalf("Expand: want *LoopError, got %v", err)
	}
}

func TestLoopAtExpansion(t *testing.T) {
	tab, _, err := Parse(strings.NewReader("loop1: loop2@localhost\nloop2: loop1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Expand("loop1", local("h")); err == nil || !strings.Contains(err.Error(), "alias loop") {
		t.Fatalf("want a loop error, got %v", err)
	}
}

func TestLoadMissingFileIsEmpty(t *testing.T) {
	tab, probs, err := Load(filepath.Join(t.TempDir(), "aliases"))
	if err != nil || len(probs) != 0 || tab.Len() != 0 {
		t.Fatalf("Load(missing) = %v, %v, %v", tab.Len(), probs, err)
	}
	p := filepath.Join(t.TempDir(), "aliases")
	if err := os.WriteFile(p, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, _, err = Load(p)
	if err != nil || tab.Len() != 8 {
		t.Fatalf("Load = %d entries, %v; want 8", tab.Len(), err)
	}
	if e := tab.Entries()[2]; e.Name != "ops" || e.Line != 6 || !slices.Equal(e.Values, []string{"ops1@example.com", "ops2@example.com", "ops1@example.com"}) {
		t.Fatalf("entry 3 = %+v", e)
	}
}

func TestLocalName(t *testing.T) {
	tests := []struct {
		addr, host, want string
		ok               bool
	}{
		{"Root", "pve1", "root", true},
		{"root@localhost", "pve1", "root", true},
		{"root@localhost.localdomain.", "pve1", "root", true},
		{"root@PVE1", "pve1.example.com", "root", true},
		{"root@pve1.example.com", "pve1.example.com", "root", true},
		{"root@example.com", "pve1.example.com", "", false},
		{"@localhost", "h", "", false},
		{"", "h", "", false},
	}
	for _, tc := range tests {
		got, ok := LocalName(tc.addr, tc.host)
		if got != tc.want || ok != tc.ok {
			t.Errorf("LocalName(%q, %q) = %q, %v; want %q, %v", tc.addr, tc.host, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("loop1: loop2\nloop2: loop1\n")
	f.Add("a: \"b, c\", d\n  e\n")
	f.Fuzz(func(t *testing.T, in string) {
		tab, probs, err := Parse(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probs {
			if p.Line < 1 {
				t.Fatalf("problem without a line: %+v", p)
			}
		}
		for _, e := range tab.Entries() {
			// Every alias either expands or fails with a loop it reported.
			got, err := tab.Expand(e.Name, bareLocal)
			if err != nil {
				var le *LoopError
				if !errors.As(err, &le) {
					t.Fatalf("Expand(%q): %v", e.Name, err)
				}
				continue
			}
			for _, a := range got {
				if special(a) != "" {
					t.Fatalf("Expand(%q) returned a skipped entry %q", e.Name, a)
				}
			}
		}
	})
}
