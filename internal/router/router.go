// Package router decides which targets an event goes to: Proxmox's matcher
// semantics as a pure function of (config, event, time). Route explains
// every decision (`herald explain`); Targets, on a Router built with New,
// decides the same from a plan compiled once per configuration and builds
// no explanation (the daemon). A property test holds the two to the same
// targets in the same order. It does no I/O and sends nothing.
package router

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"herald/internal/config"
	"herald/internal/event"
)

// Router routes events with one configuration. Config must be set; a loaded
// config is never modified, so one Router may serve many goroutines.
type Router struct {
	Config *config.Config
	// Location is the zone match-calendar windows are evaluated in; nil
	// means time.Local, as Proxmox uses the system's local time.
	Location *time.Location

	plan *plan // compiled by New for Targets; nil: compiled per call
}

// Result is the routing decision for one event.
type Result struct {
	Matchers []MatcherResult `json:"matchers"`
	// Targets are the names of the targets to notify: sorted,
	// de-duplicated, groups expanded, disabled and filtered targets left
	// out. Never nil, so it marshals as [] when nothing matches.
	Targets []string        `json:"targets"`
	Skipped []SkippedTarget `json:"skipped,omitempty"`
}

// MatcherResult explains one matcher's decision.
type MatcherResult struct {
	Name        string       `json:"name"`
	Disabled    bool         `json:"disabled,omitempty"`
	Matched     bool         `json:"matched"`
	Mode        string       `json:"mode"`
	InvertMatch bool         `json:"invert-match"`
	Rules       []RuleResult `json:"rules"`
	Targets     []string     `json:"targets"` // the matcher's target lines
	Reason      string       `json:"reason"`
}

// RuleResult is the outcome of one rule line.
type RuleResult struct {
	Rule    string `json:"rule"` // e.g. "match-severity error,warning"
	Matched bool   `json:"matched"`
}

// SkippedTarget is a target a matching matcher named that is not notified,
// and why: disabled, filtered out by a legacy filter, or unknown.
type SkippedTarget struct {
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// Route evaluates every matcher for ev at time at (Proxmox's algorithm,
// docs/proxmox-notify.md §3.1):
//
//   - a disabled matcher is skipped;
//   - each rule line (every match-severity, match-field and match-calendar
//     line) is one boolean; mode all needs every line, mode any one line;
//     the result is XORed with invert-match;
//   - a matcher without rule lines matches every event, even inverted;
//   - the targets of all matching matchers are united as a set; a legacy
//     group expands to its members, gated by the group's filter and each
//     member's own filter; disabled targets are left out.
//
// Nothing matching means nothing is sent: there is no fallback.
func (r *Router) Route(ev *event.Event, at time.Time) Result {
	loc := r.Location
	if loc == nil {
		loc = time.Local
	}
	local := at.In(loc)
	cfg := r.Config
	res := Result{Matchers: make([]MatcherResult, 0, len(cfg.Matchers)), Targets: []string{}}

	nRules, nNames := 0, 0
	for _, m := range cfg.Matchers {
		nRules += len(m.Severity) + len(m.Fields) + len(m.Calendar)
		nNames += len(m.Targets)
	}
	rules := make([]RuleResult, 0, nRules)
	names := make([]string, 0, nNames)

	var named []string // union of the target lines of matching matchers
	for _, m := range cfg.Matchers {
		mr := evaluate(m, ev, local, &rules, &names)
		if mr.Matched {
			for _, t := range m.Targets {
				if !slices.Contains(named, t) {
					named = append(named, t)
				}
			}
		}
		res.Matchers = append(res.Matchers, mr)
	}
	slices.Sort(named)

	var skipped []SkippedTarget
	admit := func(t *config.Section, via string) {
		if t.Disabled() {
			skipped = append(skipped, SkippedTarget{t.Name, "target is disabled" + via})
			return
		}
		if fname, ok := t.Get("filter"); ok {
			// An unknown filter fails open, as in proxmox-notify 0.2 (the
			// loader refuses unknown filter names anyway).
			if f := cfg.Filter(fname); f != nil && !f.Match(ev) {
				skipped = append(skipped, SkippedTarget{t.Name, fmt.Sprintf("legacy filter '%s' does not match%s", fname, via)})
				return
			}
		}
		res.Targets = append(res.Targets, t.Name)
	}
	for _, name := range named {
		if t := cfg.Target(name); t != nil {
			admit(t, "")
			continue
		}
		g := cfg.Group(name)
		if g == nil {
			skipped = append(skipped, SkippedTarget{name, "no such target"})
			continue
		}
		if g.Filter != "" {
			if f := cfg.Filter(g.Filter); f != nil && !f.Match(ev) {
				skipped = append(skipped, SkippedTarget{name, fmt.Sprintf("legacy filter '%s' of group '%s' does not match", g.Filter, name)})
				continue
			}
		}
		for _, member := range g.Endpoints {
			t := cfg.Target(member)
			if t == nil {
				skipped = append(skipped, SkippedTarget{member, fmt.Sprintf("no such target (member of group '%s')", name)})
				continue
			}
			admit(t, fmt.Sprintf(" (member of group '%s')", name))
		}
	}

	slices.Sort(res.Targets)
	res.Targets = slices.Compact(res.Targets)
	// A target reached one way and skipped another is notified; report
	// only targets that are not notified at all, each once.
	for _, s := range skipped {
		if _, found := slices.BinarySearch(res.Targets, s.Target); found {
			continue
		}
		if slices.ContainsFunc(res.Skipped, func(o SkippedTarget) bool { return o.Target == s.Target }) {
			continue
		}
		res.Skipped = append(res.Skipped, s)
	}
	slices.SortStableFunc(res.Skipped, func(a, b SkippedTarget) int {
		switch {
		case a.Target < b.Target:
			return -1
		case a.Target > b.Target:
			return 1
		}
		return 0
	})
	return res
}

// evaluate decides one matcher and explains the decision. Rule results and
// target copies are carved out of the caller's backing arrays to keep
// allocations per event low.
func evaluate(m *config.Matcher, ev *event.Event, local time.Time, rules *[]RuleResult, names *[]string) (mr MatcherResult) {
	mode := m.Mode
	if mode == "" {
		mode = "all"
	}
	start := len(*names)
	*names = append(*names, m.Targets...)
	mr = MatcherResult{
		Name:        m.Name,
		Mode:        mode,
		InvertMatch: m.Invert,
		Targets:     (*names)[start:len(*names):len(*names)],
	}
	rstart := len(*rules)
	defer func() { mr.Rules = (*rules)[rstart:len(*rules):len(*rules)] }()
	if m.Disable {
		mr.Disabled = true
		mr.Reason = "disabled: skipped"
		return mr
	}
	labels := m.RuleLabels()
	hits, i := 0, 0
	add := func(ok bool) {
		*rules = append(*rules, RuleResult{Rule: labels[i], Matched: ok})
		i++
		if ok {
			hits++
		}
	}
	for _, r := range m.Severity {
		add(r.Match(ev))
	}
	for _, r := range m.Fields {
		add(r.Match(ev))
	}
	for _, r := range m.Calendar {
		add(r.Match(local))
	}
	n := i
	if n == 0 {
		mr.Matched = true
		mr.Reason = "no rules: matches everything"
		if m.Invert {
			mr.Reason = "no rules: matches everything (invert-match does not apply to a matcher without rules)"
		}
		return mr
	}
	acc := hits == n
	if mode == "any" {
		acc = hits > 0
	}
	mr.Matched = acc != m.Invert
	mr.Reason = reason(mode, hits, n, m.Invert, mr.Matched)
	return mr
}

// reasonTable holds the explanation sentences of matchers with up to
// maxCached rule lines, so that routing does not build the same strings
// for every event: [any][invert][matched][hits][n].
const maxCached = 8

var reasonTable [2][2][2][maxCached + 1][maxCached + 1]string

func init() {
	for anyMode := range 2 {
		for inv := range 2 {
			for matched := range 2 {
				for hits := 0; hits <= maxCached; hits++ {
					for n := hits; n <= maxCached; n++ {
						mode := "all"
						if anyMode == 1 {
							mode = "any"
						}
						reasonTable[anyMode][inv][matched][hits][n] = buildReason(mode, hits, n, inv == 1, matched == 1)
					}
				}
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func reason(mode string, hits, n int, invert, matched bool) string {
	if n <= maxCached && (mode == "all" || mode == "any") {
		return reasonTable[b2i(mode == "any")][b2i(invert)][b2i(matched)][hits][n]
	}
	return buildReason(mode, hits, n, invert, matched)
}

func buildReason(mode string, hits, n int, invert, matched bool) string {
	suffix := ""
	if invert {
		suffix = "; inverted: no match"
		if matched {
			suffix = "; inverted: matches"
		}
	}
	return "mode " + mode + ": " + strconv.Itoa(hits) + " of " + strconv.Itoa(n) + " rules matched" + suffix
}
