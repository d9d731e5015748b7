package metrics

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// This file writes the Prometheus text exposition format, version 0.0.4
// (docs/metrics.md says why herald writes it itself): one block per family,
// "# HELP" and "# TYPE" first, then its samples, label values escaped as
// the format says.

// contentType is the text format's media type, as Prometheus negotiates it.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// family describes one metric family.
type family struct {
	name, help string
	typ        string   // counter, gauge, summary
	labels     []string // label names, in order
}

// sample is one series of a family: its label values (in the family's
// order) and its value. A summary's samples carry their own suffix and
// extra label (quantile) in name and extra.
type sample struct {
	values []string
	value  float64
	suffix string    // "", "_sum", "_count"
	extra  [2]string // one more label pair (quantile), or empty
}

// expo writes families to a buffered writer and remembers the first write
// error.
type expo struct {
	w   *bufio.Writer
	err error
}

// family writes f's header and its samples. Labels are written sorted by
// name and samples sorted by their label values in that order, as
// client_golang writes them, so that scrapes and diffs are stable. A family
// without samples is left out entirely.
func (e *expo) family(f *family, samples []sample) {
	if len(samples) == 0 || e.err != nil {
		return
	}
	order := make([]int, len(f.labels))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(f.labels[a], f.labels[b]) })
	key := func(s sample) []string {
		k := make([]string, 0, len(order))
		for _, i := range order {
			if i < len(s.values) {
				k = append(k, s.values[i])
			}
		}
		return k
	}
	slices.SortStableFunc(samples, func(a, b sample) int { return slices.Compare(key(a), key(b)) })
	fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
	for _, s := range samples {
		e.w.WriteString(f.name)
		e.w.WriteString(s.suffix)
		n := 0
		for _, i := range order {
			if i < len(s.values) {
				e.label(&n, f.labels[i], s.values[i])
			}
		}
		if s.extra[0] != "" {
			e.label(&n, s.extra[0], s.extra[1])
		}
		if n > 0 {
			e.w.WriteByte('}')
		}
		e.w.WriteByte(' ')
		e.w.WriteString(formatValue(s.value))
		_, err := e.w.WriteString("\n")
		if err != nil && e.err == nil {
			e.err = err
		}
	}
}

// label writes one label pair; n counts the pairs written so far.
func (e *expo) label(n *int, name, value string) {
	if *n == 0 {
		e.w.WriteByte('{')
	} else {
		e.w.WriteByte(',')
	}
	*n++
	e.w.WriteString(name)
	e.w.WriteString(`="`)
	e.w.WriteString(escapeLabel(value))
	e.w.WriteByte('"')
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// formatValue writes a float as the format wants it: the shortest exact
// decimal form, and +Inf, -Inf, NaN by name.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Write writes every metric in the text exposition format. A source
// callback that panics (the queue's, the spool's, the monitors') costs only
// its own families: the others are still written, as a scrape that loses
// one gauge is better than a scrape that fails.
func (m *Metrics) Write(w io.Writer) error {
	e := &expo{w: bufio.NewWriterSize(w, 16<<10)}
	// Read once for the runtime's and the process's series; unreadable
	// (nil), the series that come from it are left out.
	st, _ := procStatus()
	for _, section := range []func(*expo){m.writeHerald, m.writeFleet, m.writeMonitors,
		func(e *expo) { writeRuntime(e, st) }, func(e *expo) { writeProcess(e, st) }} {
		guard(e, section)
	}
	if err := e.w.Flush(); err != nil && e.err == nil {
		e.err = err
	}
	return e.err
}

// guard runs one section, turning a panic into a comment line so that the
// reader of the scrape sees that something is missing.
func guard(e *expo, section func(*expo)) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(e.w, "# a collector failed: %s\n", strings.ReplaceAll(fmt.Sprint(r), "\n", " "))
		}
	}()
	section(e)
}

// Handler serves the metrics in the text exposition format, gzipped when
// the client accepts it (as Prometheus does).
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		var out io.Writer = w
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Add("Vary", "Accept-Encoding")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gz
		}
		if r.Method == http.MethodHead {
			return
		}
		// A write error is the client going away: nothing to tell it.
		_ = m.Write(out)
	})
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.TrimSpace(params)
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
