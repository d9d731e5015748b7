package config

import (
	"time"

	"herald/internal/event"
	"herald/internal/match"
)

// NoiseRule is a `noise:` section (herald's own): which events it takes
// (matcher rules: match-severity, match-field, match-calendar, mode,
// invert-match), which targets it applies to (`target`, repeatable; none
// means every target), and exactly one action:
//
//	dedup-window DURATION        same type, hostname, severity and title
//	                             inside the window: the first is delivered,
//	                             the rest counted, one summary at the end
//	quiet-hours WINDOW           hold deliveries while inside the window
//	                             (match-calendar syntax; may cross midnight)
//	quiet-bypass-severity SEV    with quiet-hours: SEV and above go at once
//	digest TIME                  collect, deliver one digest at TIME
//	                             ("08:00", "mon..fri 8:00")
//
// docs/noise.md describes what each action does with the deliveries.
type NoiseRule struct {
	Name string `json:"name"`
	File string `json:"file"`
	Line int    `json:"line"`
	// Select decides whether an event is the rule's; its Targets are the
	// rule's target limits (empty: all targets).
	Select  *Matcher      `json:"select"`
	Disable bool          `json:"disable,omitempty"`
	Dedup   time.Duration `json:"dedup-window,omitempty"`
	Quiet   *match.Window `json:"quiet-hours,omitempty"`
	// Bypass is the lowest severity that passes quiet hours at once; only
	// meaningful when HasBypass.
	Bypass    event.Severity      `json:"quiet-bypass-severity,omitempty"`
	HasBypass bool                `json:"-"`
	Digest    *match.CalendarTime `json:"digest,omitempty"`
	Comment   string              `json:"comment,omitempty"`
}

// AppliesTo reports whether the rule's target limits include name.
func (r *NoiseRule) AppliesTo(name string) bool {
	if len(r.Select.Targets) == 0 {
		return true
	}
	for _, t := range r.Select.Targets {
		if t == name {
			return true
		}
	}
	return false
}

func init() {
	registerType("noise", &typeDef{kind: kindHerald, keys: common(map[string]keyDef{
		"target":                {array: true, check: checkID},
		"match-severity":        {array: true},
		"match-field":           {array: true},
		"match-calendar":        {array: true},
		"mode":                  {check: checkEnum("all", "any")},
		"invert-match":          {check: checkBool},
		"dedup-window":          {check: checkDaysDuration},
		"quiet-hours":           {},
		"quiet-bypass-severity": {check: checkSeverity},
		"digest":                {},
	}), build: buildNoise})
}

func checkDaysDuration(v string) string {
	d, err := ParseDuration(v)
	if err != nil || d <= 0 {
		return "must be a positive duration such as 90s, 5m, 2h or 1d"
	}
	return ""
}

// buildNoise turns a noise section into a NoiseRule on cfg.Noise. The
// selection rules go through buildMatcher, so they parse (and later
// evaluate) exactly as a matcher's do.
func buildNoise(d diags, s *Section, cfg *Config) {
	r := &NoiseRule{Name: s.Name, File: s.File, Line: s.Line, Disable: s.Disabled()}
	r.Comment, _ = s.Get("comment")
	sel := &parsedSection{typ: s.Type, id: s.Name, line: s.Line, file: s.File}
	for _, p := range s.props {
		switch p.key {
		case "target", "match-severity", "match-field", "match-calendar", "mode", "invert-match":
			sel.props = append(sel.props, p)
		}
	}
	r.Select = buildMatcher(d, sel, s.Origin)
	for _, p := range sel.values("target") {
		if cfg.Target(p.value) == nil && cfg.Group(p.value) == nil {
			d.errf(p.line, "noise '%s': target '%s' does not exist", s.Name, p.value)
		}
	}
	actions := 0
	if v, ok := s.Get("dedup-window"); ok {
		r.Dedup, _ = ParseDuration(v)
		actions++
	}
	if v, ok := s.Get("quiet-hours"); ok {
		w, err := match.ParseWindow(v)
		if err != nil {
			d.errf(s.LineOf("quiet-hours"), "quiet-hours: %v", err)
		} else {
			r.Quiet = &w
		}
		actions++
	}
	if v, ok := s.Get("quiet-bypass-severity"); ok {
		r.Bypass, _ = event.ParseSeverity(v)
		r.HasBypass = true
		if _, quiet := s.Get("quiet-hours"); !quiet {
			d.errf(s.LineOf("quiet-bypass-severity"), "noise '%s': quiet-bypass-severity needs quiet-hours", s.Name)
		}
	}
	if v, ok := s.Get("digest"); ok {
		t, err := match.ParseCalendarTime(v)
		if err != nil {
			d.errf(s.LineOf("digest"), "digest: %v", err)
		} else {
			r.Digest = &t
		}
		actions++
	}
	switch {
	case actions == 0:
		d.errf(s.Line, "noise '%s' has no action: set one of dedup-window, quiet-hours or digest", s.Name)
	case actions > 1:
		d.errf(s.Line, "noise '%s' sets more than one of dedup-window, quiet-hours and digest: write one section per action", s.Name)
	}
	cfg.Noise = append(cfg.Noise, r)
}
