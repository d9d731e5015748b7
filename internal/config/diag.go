package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Diagnostic is one problem found in a config file: an error, or a warning
// that does not stop the file from loading. Line is 1-based; 0 means the
// problem concerns the file as a whole (its permissions, for instance).
type Diagnostic struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Msg     string `json:"message"`
	Warning bool   `json:"warning,omitempty"`
}

// Error renders the diagnostic as FILE:LINE: msg (warnings as
// FILE:LINE: warning: msg), the form `herald check` prints.
func (d Diagnostic) Error() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
	}
	b.WriteString(": ")
	if d.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Diagnostics is a list of problems; as an error it prints one per line.
type Diagnostics []Diagnostic

// Error renders every diagnostic on its own line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether at least one diagnostic is not a warning.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if !d.Warning {
			return true
		}
	}
	return false
}

// Errors returns the diagnostics that are errors.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if !d.Warning {
			out = append(out, d)
		}
	}
	return out
}

// Warnings returns the diagnostics that are warnings.
func (ds Diagnostics) Warnings() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Warning {
			out = append(out, d)
		}
	}
	return out
}

// sort orders diagnostics by file (in order of first appearance), then
// line; it is stable so several problems on one line keep their order.
func (ds Diagnostics) sort(fileOrder []string) {
	rank := func(f string) int {
		if i := slices.Index(fileOrder, f); i >= 0 {
			return i
		}
		return len(fileOrder)
	}
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		if c := cmp.Compare(rank(a.File), rank(b.File)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
}

// diags collects diagnostics for one file.
type diags struct {
	list *Diagnostics
	file string
}

func (d diags) errf(line int, format string, args ...any) {
	*d.list = append(*d.list, Diagnostic{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (d diags) warnf(line int, format string, args ...any) {
	*d.list = append(*d.list, Diagnostic{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...), Warning: true})
}
