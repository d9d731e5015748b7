package config

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"herald/internal/event"
	"herald/internal/match"
)

// herald's monitor sections (docs/monitors.md):
//
//	heartbeat: NAME                 an expected success, fed by events
//		match-field / match-severity / match-calendar / mode / invert-match
//		                            select the watched events, as in matchers;
//		                            no rules: only the push token feeds it
//		period DURATION | schedule CALENDAR   (exactly one)
//		grace DURATION              (default 0)
//		alert-after-missed N        (default 1)
//		alert-after-failures N      (default 1)
//		failure-severity LIST       (default warning,error)
//		repeat DURATION             re-raise while down (default off)
//		comment, disable
//	private file: heartbeat: NAME / push-token TOKEN
//
//	usage: NAME                     file system usage of path
//		path ABSPATH, threshold PERCENT, interval DURATION (default 5m),
//		hysteresis PERCENT (default 5), comment, disable
func init() {
	registerType("heartbeat", &typeDef{kind: kindHerald, keys: common(map[string]keyDef{
		"match-severity":       {array: true},
		"match-field":          {array: true},
		"match-calendar":       {array: true},
		"mode":                 {check: checkEnum("all", "any")},
		"invert-match":         {check: checkBool},
		"period":               {check: checkMonitorDuration},
		"schedule":             {},
		"grace":                {check: checkGrace},
		"alert-after-missed":   {check: checkIntRange(1, 1000)},
		"alert-after-failures": {check: checkIntRange(1, 1000)},
		"failure-severity":     {},
		"repeat":               {check: checkMonitorDuration},
	}), priv: map[string]keyDef{
		"push-token": {check: checkPushToken},
	}, secretKeys: []string{"push-token"}, build: buildHeartbeat})
	registerType("usage", &typeDef{kind: kindHerald, keys: common(map[string]keyDef{
		"path":       {required: true, check: checkAbsPath},
		"threshold":  {required: true, check: checkPercent},
		"interval":   {check: checkMonitorDuration},
		"hysteresis": {check: checkPercent},
	}), build: buildUsage})
}

// Monitors holds the heartbeat and usage sections, file order.
type Monitors struct {
	Heartbeats []*Heartbeat `json:"heartbeats,omitempty"`
	Usage      []*Usage     `json:"usage,omitempty"`
}

// Heartbeat returns the heartbeat of that name, or nil.
func (m Monitors) Heartbeat(name string) *Heartbeat {
	for _, h := range m.Heartbeats {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Defaults of the monitor sections.
const (
	DefaultUsageInterval   = 5 * time.Minute
	DefaultUsageHysteresis = 5.0
)

// Heartbeat is one heartbeat section: herald expects a success of the
// events its rules select (or of its push token) every period, or after
// every scheduled time, and raises a down event when none comes.
type Heartbeat struct {
	Name string `json:"name"`
	File string `json:"file"`
	Line int    `json:"line"`
	// Rules holds the match-* lines, mode and invert-match, parsed and
	// evaluated exactly as a matcher's; it has no targets.
	Rules              *Matcher         `json:"rules"`
	Period             time.Duration    `json:"period,omitempty"`
	Schedule           *match.Schedule  `json:"schedule,omitempty"`
	Grace              time.Duration    `json:"grace"`
	AlertAfterMissed   int              `json:"alert-after-missed"`
	AlertAfterFailures int              `json:"alert-after-failures"`
	FailureSeverity    []event.Severity `json:"failure-severity"`
	Repeat             time.Duration    `json:"repeat,omitempty"`
	Disable            bool             `json:"disable,omitempty"`
	Comment            string           `json:"comment,omitempty"`
	// PushToken is the token of /api/push/TOKEN; empty when none is set.
	PushToken Secret `json:"push-token,omitzero"`
}

// IsFailure reports whether a watched event of severity s is a failure.
func (h *Heartbeat) IsFailure(s event.Severity) bool { return slices.Contains(h.FailureSeverity, s) }

// Usage is one usage section: the file system holding Path is watched
// every Interval; above Threshold percent (blocks or inodes) herald raises
// a warning, and an info once usage is back below Threshold-Hysteresis.
type Usage struct {
	Name       string        `json:"name"`
	File       string        `json:"file"`
	Line       int           `json:"line"`
	Path       string        `json:"path"`
	Threshold  float64       `json:"threshold"`
	Interval   time.Duration `json:"interval"`
	Hysteresis float64       `json:"hysteresis"`
	Disable    bool          `json:"disable,omitempty"`
	Comment    string        `json:"comment,omitempty"`
}

func checkMonitorDuration(v string) string {
	d, err := ParseDuration(v)
	if err != nil || d < time.Second {
		return "must be a duration of at least 1s such as 90s, 26h or 1d12h"
	}
	return ""
}

func checkGrace(v string) string {
	if v == "0" {
		return ""
	}
	d, err := ParseDuration(v)
	if err != nil || d < 0 {
		return "must be a duration such as 0, 30m, 2h or 1d"
	}
	return ""
}

func checkPercent(v string) string {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 100 {
		return "must be a percentage above 0 and at most 100"
	}
	return ""
}

// checkPushToken accepts what can travel in a URL path unescaped; the
// value is never quoted in the reason (it is a secret).
func checkPushToken(v string) string {
	if len(v) < 8 || len(v) > 256 {
		return "a push token is 8 to 256 characters"
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return "a push token is letters, digits, '-', '_', '.' and '~'"
		}
	}
	return ""
}

func mustDuration(s *Section, key string) time.Duration {
	v, ok := s.Get(key)
	if !ok || v == "0" {
		return 0
	}
	d, _ := ParseDuration(v) // checked by the schema
	return d
}

func intOr(s *Section, key string, def int) int {
	if v, ok := s.Get(key); ok {
		n, _ := strconv.Atoi(v) // checked by the schema
		return n
	}
	return def
}

func buildHeartbeat(d diags, s *Section, cfg *Config) {
	h := &Heartbeat{
		Name: s.Name, File: s.File, Line: s.Line,
		// The matcher's own builder parses the rule lines, so a heartbeat
		// reads them exactly as a matcher does (and reports bad values the
		// same way); the other keys are not matcher keys and it skips them.
		Rules:              buildMatcher(d, &parsedSection{typ: s.Type, id: s.Name, line: s.Line, props: s.props, file: s.File}, s.Origin),
		Period:             mustDuration(s, "period"),
		Grace:              mustDuration(s, "grace"),
		AlertAfterMissed:   intOr(s, "alert-after-missed", 1),
		AlertAfterFailures: intOr(s, "alert-after-failures", 1),
		FailureSeverity:    []event.Severity{event.Warning, event.Error},
		Repeat:             mustDuration(s, "repeat"),
		Disable:            s.Disabled(),
	}
	h.Comment, _ = s.Get("comment")
	if v, ok := s.Get("failure-severity"); ok {
		if r, err := match.ParseSeverity(v); err != nil {
			d.errf(s.LineOf("failure-severity"), "invalid failure-severity %q: want a comma list of info, notice, warning, error, unknown", v)
		} else {
			h.FailureSeverity = r.Severities()
		}
	}
	_, hasPeriod := s.Get("period")
	sched, hasSched := s.Get("schedule")
	switch {
	case hasPeriod && hasSched:
		d.errf(s.LineOf("schedule"), "heartbeat '%s' sets both period and schedule: use one", s.Name)
	case !hasPeriod && !hasSched:
		d.errf(s.Line, "heartbeat '%s' needs a period (e.g. period 26h) or a schedule (e.g. schedule daily)", s.Name)
	case hasSched:
		sc, err := match.ParseSchedule(sched)
		if err != nil {
			d.errf(s.LineOf("schedule"), "%v", err)
			break
		}
		if _, ok := sc.Next(time.Now()); !ok {
			d.errf(s.LineOf("schedule"), "schedule %q never comes (no occurrence within eight years)", sched)
			break
		}
		h.Schedule = &sc
	}
	if tok, ok := s.Secret("push-token"); ok {
		h.PushToken = tok
		for _, o := range cfg.Monitors.Heartbeats {
			if !o.PushToken.IsEmpty() && o.PushToken.Reveal() == tok.Reveal() {
				pv := diags{list: d.list, file: s.PrivFile}
				pv.errf(s.PrivLine, "heartbeat '%s' has the same push-token as heartbeat '%s': each needs its own", s.Name, o.Name)
			}
		}
	}
	if !h.Rules.HasRules() && h.PushToken.IsEmpty() && !h.Disable {
		d.warnf(s.Line, "heartbeat '%s' has no match-* rules and no push-token in the private file: nothing can feed it, so it will go down", s.Name)
	}
	cfg.Monitors.Heartbeats = append(cfg.Monitors.Heartbeats, h)
}

func buildUsage(d diags, s *Section, cfg *Config) {
	u := &Usage{Name: s.Name, File: s.File, Line: s.Line, Interval: DefaultUsageInterval,
		Hysteresis: DefaultUsageHysteresis, Disable: s.Disabled()}
	u.Path, _ = s.Get("path")
	u.Comment, _ = s.Get("comment")
	if v, ok := s.Get("threshold"); ok {
		u.Threshold, _ = strconv.ParseFloat(v, 64)
	}
	if v, ok := s.Get("hysteresis"); ok {
		u.Hysteresis, _ = strconv.ParseFloat(v, 64)
		if u.Hysteresis >= u.Threshold {
			d.errf(s.LineOf("hysteresis"), "hysteresis %s must be below the threshold (%s)", v, fmt.Sprint(u.Threshold))
		}
	} else if u.Hysteresis >= u.Threshold {
		u.Hysteresis = u.Threshold / 2
	}
	if _, ok := s.Get("interval"); ok {
		u.Interval = mustDuration(s, "interval")
	}
	cfg.Monitors.Usage = append(cfg.Monitors.Usage, u)
}
