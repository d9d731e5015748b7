// Package aliases reads /etc/aliases in the classic format that sendmail,
// Postfix and exim share (aliases(5)) and expands local recipients through
// it. herald honours the parts that name people; it never runs commands or
// writes files for an alias: `|command`, `/file` and `:include:` entries are
// reported and skipped. docs/recipients.md describes what herald does with
// each form.
//
// The format:
//
//	# a comment
//	postmaster: root
//	root: admin@example.com, ops
//	ops: ops1@example.com,
//	  ops2@example.com          (a line starting with white space continues)
//
// Names are case-insensitive. A value `\name` is delivered to the local user
// name without further expansion. An alias that names itself (`root: root,
// a@b`) keeps its local mailbox; any other cycle is a loop and an error.
//
// The package imports nothing of herald's, so the sendmail shim can use it
// for newaliases.
package aliases

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// DefaultFile is where Debian keeps the aliases.
const DefaultFile = "/etc/aliases"

// maxDepth bounds nesting (sendmail's MAXRCRSN is 10; Postfix allows
// more): deeper chains are almost certainly a mistake.
const maxDepth = 20

// maxLine bounds one logical line (continuations joined) so that a
// garbage file cannot cost unbounded memory per entry.
const maxLine = 64 << 10

// Problem is one finding in an aliases file: an error (the entry is
// unusable) or a warning (something was skipped).
type Problem struct {
	Line    int
	Msg     string
	Warning bool
}

// Entry is one alias definition.
type Entry struct {
	Name   string   // folded to lower case
	Values []string // as written, in order, each trimmed
	Line   int
}

// Table is a parsed aliases file. The zero value and a nil *Table are empty.
type Table struct {
	entries map[string]*Entry
	order   []string
}

// Load reads an aliases file. A missing file is an empty table (a host
// without an MTA has none); other read errors are returned.
func Load(path string) (*Table, []Problem, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Table{}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	t, probs, err := Parse(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, probs, nil
}

// Parse reads the aliases format. Bad lines, duplicates, skipped entries and
// loops are Problems; only read errors are returned as errors.
func Parse(r io.Reader) (*Table, []Problem, error) {
	t := &Table{entries: map[string]*Entry{}}
	var probs []Problem
	br := bufio.NewReader(r)
	var cur strings.Builder
	curLine := 0
	flush := func() {
		if curLine == 0 {
			return
		}
		probs = t.addLine(cur.String(), curLine, probs)
		cur.Reset()
		curLine = 0
	}
	n := 0
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			n++
			line = strings.TrimRight(line, "\r\n")
			switch {
			case strings.HasPrefix(strings.TrimLeft(line, " \t"), "#"):
				// Comments may sit between continuation lines, as in
				// sendmail; they neither end nor continue an entry.
			case strings.TrimSpace(line) == "":
				flush()
			case line[0] == ' ' || line[0] == '\t':
				if curLine == 0 {
					probs = append(probs, Problem{Line: n, Msg: "continuation line without an alias before it"})
					break
				}
				if cur.Len()+len(line) > maxLine {
					probs = append(probs, Problem{Line: curLine, Msg: fmt.Sprintf("entry longer than %d bytes", maxLine)})
					cur.Reset()
					curLine = 0
					break
				}
				cur.WriteString(" ")
				cur.WriteString(strings.TrimSpace(line))
			default:
				flush()
				cur.WriteString(line)
				curLine = n
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
	}
	flush()
	probs = append(probs, t.findLoops()...)
	slices.SortStableFunc(probs, func(a, b Problem) int { return a.Line - b.Line })
	return t, probs, nil
}

// addLine parses one logical line "name: value, value".
func (t *Table) addLine(s string, line int, probs []Problem) []Problem {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return append(probs, Problem{Line: line, Msg: "control character in entry"})
	}
	name, rest, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return append(probs, Problem{Line: line, Msg: "expected NAME: ADDRESS, ... (no colon)"})
	}
	if strings.HasPrefix(name, `"`) && strings.HasSuffix(name, `"`) && len(name) >= 2 {
		name = name[1 : len(name)-1]
	}
	if name == "" || strings.ContainsAny(name, " \t,@\\\"") {
		return append(probs, Problem{Line: line, Msg: fmt.Sprintf("invalid alias name %q", name)})
	}
	name = strings.ToLower(name)
	values, bad := splitValues(rest)
	if bad != "" {
		return append(probs, Problem{Line: line, Msg: bad})
	}
	if len(values) == 0 {
		return append(probs, Problem{Line: line, Msg: fmt.Sprintf("alias %s has no recipients", name)})
	}
	if prev, dup := t.entries[name]; dup {
		return append(probs, Problem{Line: line, Warning: true,
			Msg: fmt.Sprintf("duplicate alias %s (first defined on line %d, which is used)", name, prev.Line)})
	}
	for _, v := range values {
		if kind := special(v); kind != "" {
			probs = append(probs, Problem{Line: line, Warning: true,
				Msg: fmt.Sprintf("alias %s: %s entry %s is skipped: herald never runs commands or writes files for an alias", name, kind, v)})
		}
	}
	t.entries[name] = &Entry{Name: name, Values: values, Line: line}
	t.order = append(t.order, name)
	return probs
}

// splitValues splits on commas outside double quotes and trims each value.
func splitValues(s string) ([]string, string) {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == ',' && !quoted:
			if v := strings.TrimSpace(cur.String()); v != "" {
				out = append(out, v)
			}
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, "unterminated double quote"
	}
	if v := strings.TrimSpace(cur.String()); v != "" {
		out = append(out, v)
	}
	for i, v := range out {
		if strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`) && len(v) >= 2 {
			v = strings.TrimSpace(v[1 : len(v)-1])
			out[i] = v
		}
		if u, ok := strings.CutPrefix(v, `\`); ok && (u == "" || strings.ContainsAny(u, "/|:@\\\"")) {
			return nil, fmt.Sprintf("invalid local user %q", v)
		}
		if special(v) == "" && strings.ContainsAny(v, " \t<>") {
			return nil, fmt.Sprintf("invalid address %q", v)
		}
	}
	return out, ""
}

// special names the kind of entry herald skips, "" for an address.
func special(v string) string {
	switch {
	case strings.HasPrefix(v, "|"):
		return "command"
	case strings.HasPrefix(strings.ToLower(v), ":include:"):
		return ":include:"
	case strings.HasPrefix(v, "/"):
		return "file"
	}
	return ""
}

// findLoops reports every alias that cannot be expanded because it leads
// into a cycle (self-reference aside) or nests too deeply.
func (t *Table) findLoops() []Problem {
	var probs []Problem
	for _, name := range t.order {
		_, err := t.Expand(name, bareLocal)
		var le *LoopError
		if errors.As(err, &le) {
			probs = append(probs, Problem{Line: t.entries[name].Line, Msg: err.Error()})
		}
	}
	return probs
}

// bareLocal treats only bare names as local: what the file itself can say
// without knowing the host name.
func bareLocal(addr string) (string, bool) {
	if strings.Contains(addr, "@") {
		return "", false
	}
	return strings.ToLower(addr), true
}

// LoopError is an alias that expands into itself through other aliases, or
// nests deeper than herald follows.
type LoopError struct {
	Path []string
}

func (e *LoopError) Error() string {
	if len(e.Path) > maxDepth {
		return fmt.Sprintf("alias %s nests deeper than %d levels", e.Path[0], maxDepth)
	}
	return "alias loop: " + strings.Join(e.Path, " → ")
}

// Len returns the number of aliases.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.order)
}

// Entries returns the aliases in file order.
func (t *Table) Entries() []Entry {
	if t == nil {
		return nil
	}
	out := make([]Entry, 0, len(t.order))
	for _, n := range t.order {
		e := *t.entries[n]
		e.Values = slices.Clone(e.Values)
		out = append(out, e)
	}
	return out
}

// Expand returns where mail for addr goes. local says whether an address is
// local and gives its user name (LocalName with the host name); only local
// addresses are looked up. An address that is no alias comes back as it is.
// The result keeps order and drops duplicates; skipped entries (commands,
// files, includes) are left out. An alias whose entries are all skipped
// expands to nothing, which the caller reports.
func (t *Table) Expand(addr string, local func(string) (string, bool)) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if err := t.expand(addr, local, nil, add); err != nil {
		return nil, err
	}
	return out, nil
}

func (t *Table) expand(addr string, local func(string) (string, bool), path []string, add func(string)) error {
	if strings.HasPrefix(addr, `\`) {
		add(strings.ToLower(addr[1:]))
		return nil
	}
	name, isLocal := local(addr)
	if !isLocal || t == nil {
		add(addr)
		return nil
	}
	e := t.entries[name]
	if e == nil {
		add(addr)
		return nil
	}
	if slices.Contains(path, name) {
		return &LoopError{Path: append(slices.Clone(path), name)}
	}
	path = append(path, name)
	if len(path) > maxDepth {
		return &LoopError{Path: path}
	}
	for _, v := range e.Values {
		if special(v) != "" {
			continue
		}
		if n, ok := local(v); ok && n == name {
			add(name) // `root: root, ...`: the user keeps a local copy
			continue
		}
		if err := t.expand(v, local, path, add); err != nil {
			return err
		}
	}
	return nil
}

// LocalName reports whether addr is delivered on this host and returns the
// user (or alias) name: a bare name, or name@ one of localhost,
// localhost.localdomain, hostname or its first label. The name is folded to
// lower case, as Postfix's local(8) does.
func LocalName(addr, hostname string, domains ...string) (string, bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return strings.ToLower(addr), addr != ""
	}
	name, domain := strings.ToLower(addr[:i]), strings.TrimSuffix(addr[i+1:], ".")
	short, _, _ := strings.Cut(hostname, ".")
	for _, d := range append([]string{"localhost", "localhost.localdomain", hostname, short}, domains...) {
		if d != "" && strings.EqualFold(domain, d) {
			return name, name != ""
		}
	}
	return "", false
}
