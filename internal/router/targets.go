package router

import (
	"slices"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/match"
)

// The daemon's routing path. Route explains every decision, which costs a
// string and a slice per rule line; the daemon only needs the targets, so
// Targets decides the same thing from a plan compiled once per
// configuration (New), without building an explanation and without
// allocating per event. TestTargetsAgreeWithRoute holds the two paths to
// the same answers.

// plan is a configuration compiled for Targets. It is read-only once built.
type plan struct {
	matchers []planMatcher // the enabled matchers, config order
	fields   []string      // the distinct field names the rules read
	calendar bool          // some rule is a match-calendar line
	// names are the distinct target-line names of the enabled matchers,
	// sorted: the order Route resolves them in.
	names []planName
	// targets are the distinct names of the targets that names can
	// reach, sorted: a set of indices in it, walked in order, is Route's
	// sorted and de-duplicated target list.
	targets []string
}

type planMatcher struct {
	anyMode bool // mode any, else all
	invert  bool
	rules   []planRule // empty: matches every event, even inverted
	names   []int      // indices into plan.names
}

type ruleKind uint8

const (
	ruleSeverity ruleKind = iota
	ruleField
	ruleCalendar
)

type planRule struct {
	kind     ruleKind
	severity match.SeverityRule
	field    match.FieldRule
	fieldIdx int // index into plan.fields
	calendar match.CalendarRule
}

// planName is how one target-line name resolves: a target, a legacy group
// of members, or nothing (unknown names are skipped, as in Route).
type planName struct {
	target  admit   // when isTarget
	members []admit // a group's members that exist
	filter  *config.Filter
	isGroup bool
	// isTarget is false for a group or an unknown name.
	isTarget bool
}

// admit is one target a name reaches: its index in plan.targets (-1 when
// the target is disabled, so never notified) and its legacy filter.
type admit struct {
	idx    int
	filter *config.Filter
}

// New returns a Router for cfg whose Targets uses a plan compiled now:
// regular expressions, field look-ups, calendar windows and severity sets
// are read once here instead of for every event. loc is the zone
// match-calendar windows are evaluated in (nil: time.Local).
func New(cfg *config.Config, loc *time.Location) *Router {
	return &Router{Config: cfg, Location: loc, plan: compile(cfg)}
}

func compile(cfg *config.Config) *plan {
	p := &plan{}
	fieldIdx := map[string]int{}
	var names []string
	var lines [][]string // each plan matcher's target lines
	for _, m := range cfg.Matchers {
		if m.Disable {
			continue
		}
		pm := planMatcher{anyMode: m.Mode == "any", invert: m.Invert}
		for _, r := range m.Severity {
			pm.rules = append(pm.rules, planRule{kind: ruleSeverity, severity: r})
		}
		for _, r := range m.Fields {
			i, ok := fieldIdx[r.Field()]
			if !ok {
				i = len(p.fields)
				fieldIdx[r.Field()] = i
				p.fields = append(p.fields, r.Field())
			}
			pm.rules = append(pm.rules, planRule{kind: ruleField, field: r, fieldIdx: i})
		}
		for _, r := range m.Calendar {
			pm.rules = append(pm.rules, planRule{kind: ruleCalendar, calendar: r})
			p.calendar = true
		}
		p.matchers = append(p.matchers, pm)
		lines = append(lines, m.Targets)
		names = append(names, m.Targets...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	nameIdx := make(map[string]int, len(names))
	for i, n := range names {
		nameIdx[n] = i
	}
	for i := range p.matchers {
		m := &p.matchers[i]
		for _, t := range lines[i] {
			if j := nameIdx[t]; !slices.Contains(m.names, j) {
				m.names = append(m.names, j)
			}
		}
	}

	// Every target a name can reach, then its place in the sorted list.
	var reach []string
	for _, n := range names {
		if t := cfg.Target(n); t != nil {
			reach = append(reach, t.Name)
		} else if g := cfg.Group(n); g != nil {
			for _, member := range g.Endpoints {
				if t := cfg.Target(member); t != nil {
					reach = append(reach, t.Name)
				}
			}
		}
	}
	slices.Sort(reach)
	p.targets = slices.Compact(reach)
	admitOf := func(t *config.Section) admit {
		a := admit{idx: -1}
		if t.Disabled() {
			return a
		}
		a.idx, _ = slices.BinarySearch(p.targets, t.Name)
		if fname, ok := t.Get("filter"); ok {
			a.filter = cfg.Filter(fname) // unknown: nil, fails open as in Route
		}
		return a
	}
	p.names = make([]planName, len(names))
	for i, n := range names {
		pn := &p.names[i]
		if t := cfg.Target(n); t != nil {
			pn.isTarget, pn.target = true, admitOf(t)
			continue
		}
		g := cfg.Group(n)
		if g == nil {
			continue
		}
		pn.isGroup = true
		if g.Filter != "" {
			pn.filter = cfg.Filter(g.Filter)
		}
		for _, member := range g.Endpoints {
			if t := cfg.Target(member); t != nil {
				pn.members = append(pn.members, admitOf(t))
			}
		}
	}
	return p
}

// Scratch sizes that keep one routing decision on the stack; larger
// configurations allocate their scratch once per event.
const (
	stackFields = 16
	stackBits   = 4 // 64-bit words: 256 names or targets
)

// Targets appends to dst the targets ev goes to at time at and returns the
// extended slice: exactly Route(ev, at).Targets, without the explanation.
// A Router built without New compiles its plan on every call; build it
// with New to route many events.
func (r *Router) Targets(dst []string, ev *event.Event, at time.Time) []string {
	p := r.plan
	if p == nil {
		p = compile(r.Config)
	}

	// Field values, looked up once each when a rule first needs them.
	var valBuf [stackFields]string
	var stateBuf [stackFields]uint8 // 0 not looked up, 1 absent, 2 present
	vals, state := valBuf[:], stateBuf[:]
	if len(p.fields) > stackFields {
		vals, state = make([]string, len(p.fields)), make([]uint8, len(p.fields))
	}
	var day time.Weekday
	var minute int
	if p.calendar {
		day, minute = clock(at, r.Location)
	}

	var namedBuf, outBuf [stackBits]uint64
	named, out := namedBuf[:], outBuf[:]
	if w := (len(p.names) + 63) / 64; w > stackBits {
		named = make([]uint64, w)
	}
	if w := (len(p.targets) + 63) / 64; w > stackBits {
		out = make([]uint64, w)
	}

	for i := range p.matchers {
		m := &p.matchers[i]
		matched := true // a matcher without rules matches, even inverted
		if len(m.rules) > 0 {
			// Mode all stops at the first rule that fails, mode any at
			// the first that holds: the rules are pure, so skipping the
			// rest cannot change the answer.
			acc := !m.anyMode
			for j := range m.rules {
				ru := &m.rules[j]
				var ok bool
				switch ru.kind {
				case ruleSeverity:
					ok = ru.severity.Match(ev)
				case ruleField:
					k := ru.fieldIdx
					if state[k] == 0 {
						v, present := ev.Fields[p.fields[k]]
						vals[k], state[k] = v, 1
						if present {
							state[k] = 2
						}
					}
					ok = state[k] == 2 && ru.field.MatchValue(vals[k])
				case ruleCalendar:
					ok = ru.calendar.MatchClock(day, minute)
				}
				if ok == m.anyMode {
					acc = ok
					break
				}
			}
			matched = acc != m.invert
		}
		if matched {
			for _, j := range m.names {
				named[j/64] |= 1 << (j % 64)
			}
		}
	}

	pass := func(f *config.Filter) bool { return f == nil || f.Match(ev) }
	take := func(a admit) {
		if a.idx >= 0 && pass(a.filter) {
			out[a.idx/64] |= 1 << (a.idx % 64)
		}
	}
	for i := range p.names {
		if named[i/64]&(1<<(i%64)) == 0 {
			continue
		}
		pn := &p.names[i]
		switch {
		case pn.isTarget:
			take(pn.target)
		case pn.isGroup && pass(pn.filter):
			for _, a := range pn.members {
				take(a)
			}
		}
	}
	for i, name := range p.targets {
		if out[i/64]&(1<<(i%64)) != 0 {
			dst = append(dst, name)
		}
	}
	return dst
}
