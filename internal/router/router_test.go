package router

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // zone tests must not depend on the host's zoneinfo

	"herald/internal/config"
	"herald/internal/event"
)

func parse(t testing.TB, pub, priv string, flavor config.Flavor) *config.Config {
	t.Helper()
	cfg, err := config.Parse("notifications.cfg", []byte(pub), "notifications-priv.cfg", []byte(priv), config.LoadOptions{Flavor: flavor})
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return cfg
}

func mkEvent(sev event.Severity, fields ...string) *event.Event {
	ev := &event.Event{Severity: sev, Fields: map[string]string{}}
	for i := 0; i+1 < len(fields); i += 2 {
		ev.Fields[fields[i]] = fields[i+1]
	}
	return ev
}

// Monday 2025-06-02 10:00 UTC unless a test says otherwise.
var monday10 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

const targets = "sendmail: t-a\n\tmailto a@example.com\n\n" +
	"sendmail: t-b\n\tmailto b@example.com\n\n" +
	"sendmail: t-c\n\tmailto c@example.com\n\n" +
	"sendmail: t-off\n\tmailto off@example.com\n\tdisable true\n\n"

// silence disables the built-in default matcher so tests see only their own.
const silence = "matcher: default-matcher\n\tdisable true\n\n"

// routeCase is one routing decision with its expected targets.
type routeCase struct {
	name   string
	pub    string
	flavor config.Flavor
	ev     *event.Event
	at     time.Time
	want   []string
}

// routeCases are TestRoute's cases; TestTargetsAgreeWithRoute reuses them.
func routeCases() []routeCase {
	return []routeCase{
		// Built-ins (docs/proxmox-notify.md §1.6).
		{"pve empty config routes everything to mail-to-root", "", config.FlavorPVE, mkEvent(event.Info), monday10, []string{"mail-to-root"}},
		{"pve system mail", "", config.FlavorPVE, mkEvent(event.Unknown, "type", "system-mail"), monday10, []string{"mail-to-root"}},
		{"pbs successful prune is dropped", "", config.FlavorPBS, mkEvent(event.Info, "type", "prune", "datastore", "d1"), monday10, []string{}},
		{"pbs failed prune is sent", "", config.FlavorPBS, mkEvent(event.Error, "type", "prune"), monday10, []string{"mail-to-root"}},
		{"pbs successful gc is sent", "", config.FlavorPBS, mkEvent(event.Info, "type", "gc"), monday10, []string{"mail-to-root"}},
		{"pbs event without type is sent", "", config.FlavorPBS, mkEvent(event.Info), monday10, []string{"mail-to-root"}},
		// §3.1: rule-less matchers match everything, even inverted.
		{"empty matcher", targets + silence + "matcher: mm\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{"t-a"}},
		{"empty matcher inverted still matches", targets + silence + "matcher: mm\n\tinvert-match true\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{"t-a"}},
		{"empty matcher mode any", targets + silence + "matcher: mm\n\tmode any\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{"t-a"}},
		{"matcher without targets routes nowhere", targets + silence + "matcher: mm\n", 0, mkEvent(event.Info), monday10, []string{}},
		// §3.2 severity lists are OR within a line.
		{"severity in list", targets + silence + "matcher: mm\n\tmatch-severity warning,error\n\ttarget t-a\n", 0, mkEvent(event.Error), monday10, []string{"t-a"}},
		{"severity not in list", targets + silence + "matcher: mm\n\tmatch-severity warning,error\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{}},
		{"two severity lines under all", targets + silence + "matcher: mm\n\tmatch-severity warning\n\tmatch-severity error\n\ttarget t-a\n", 0, mkEvent(event.Error), monday10, []string{}},
		{"two severity lines under any", targets + silence + "matcher: mm\n\tmode any\n\tmatch-severity warning\n\tmatch-severity error\n\ttarget t-a\n", 0, mkEvent(event.Error), monday10, []string{"t-a"}},
		// §3.3 fields.
		{"missing field does not match", targets + silence + "matcher: mm\n\tmatch-field regex:datastore=.*\n\ttarget t-a\n", 0, mkEvent(event.Info, "type", "gc"), monday10, []string{}},
		{"missing field inverted matches", targets + silence + "matcher: mm\n\tmatch-field exact:datastore=d1\n\tinvert-match true\n\ttarget t-a\n", 0, mkEvent(event.Info, "type", "gc"), monday10, []string{"t-a"}},
		{"field and severity under all", targets + silence + "matcher: mm\n\tmatch-field exact:type=vzdump\n\tmatch-severity error\n\ttarget t-a\n", 0, mkEvent(event.Info, "type", "vzdump"), monday10, []string{}},
		{"field or severity under any", targets + silence + "matcher: mm\n\tmode any\n\tmatch-field exact:type=vzdump\n\tmatch-severity error\n\ttarget t-a\n", 0, mkEvent(event.Info, "type", "vzdump"), monday10, []string{"t-a"}},
		{"all lines fail under any", targets + silence + "matcher: mm\n\tmode any\n\tmatch-field exact:type=vzdump\n\tmatch-severity error\n\ttarget t-a\n", 0, mkEvent(event.Info, "type", "gc"), monday10, []string{}},
		{"all inverted: one failing line is enough", targets + silence + "matcher: mm\n\tmatch-field exact:type=vzdump\n\tmatch-severity error\n\tinvert-match true\n\ttarget t-a\n", 0, mkEvent(event.Error, "type", "gc"), monday10, []string{"t-a"}},
		{"any inverted: one matching line blocks", targets + silence + "matcher: mm\n\tmode any\n\tmatch-field exact:type=vzdump\n\tmatch-severity error\n\tinvert-match true\n\ttarget t-a\n", 0, mkEvent(event.Error, "type", "gc"), monday10, []string{}},
		// §3.4 calendar: two lines under mode all must both match.
		{"two calendar lines under all never both match", targets + silence + "matcher: mm\n\tmatch-calendar mon..fri 9-17\n\tmatch-calendar sat..sun 9-17\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{}},
		{"two calendar lines under any", targets + silence + "matcher: mm\n\tmode any\n\tmatch-calendar mon..fri 9-17\n\tmatch-calendar sat..sun 9-17\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{"t-a"}},
		{"one calendar line with a weekday list", targets + silence + "matcher: mm\n\tmatch-calendar mon,sat 9-17\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{"t-a"}},
		{"calendar end is exclusive", targets + silence + "matcher: mm\n\tmatch-calendar 8-10\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{}},
		// §3.5 disable, union, disabled targets.
		{"disabled matcher is skipped", targets + silence + "matcher: mm\n\tdisable true\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{}},
		{"union of targets as a set, sorted", targets + silence +
			"matcher: m1\n\ttarget t-c\n\ttarget t-a\n\nmatcher: m2\n\ttarget t-a\n\ttarget t-b\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{"t-a", "t-b", "t-c"}},
		{"disabled target is skipped", targets + silence + "matcher: mm\n\ttarget t-off\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{"t-a"}},
		{"no matching matcher sends nothing", targets + silence + "matcher: mm\n\tmatch-severity error\n\ttarget t-a\n", 0, mkEvent(event.Info), monday10, []string{}},
		{"user default-matcher replaces the built-in", targets + "matcher: default-matcher\n\ttarget t-b\n", 0, mkEvent(event.Info), monday10, []string{"t-b"}},
		{"disabled mail-to-root", "sendmail: mail-to-root\n\tmailto-user root@pam\n\tdisable true\n", 0, mkEvent(event.Info), monday10, []string{}},
	}
}

func TestRoute(t *testing.T) {
	for _, tt := range routeCases() {
		t.Run(tt.name, func(t *testing.T) {
			r := &Router{Config: parse(t, tt.pub, "", tt.flavor), Location: time.UTC}
			res := r.Route(tt.ev, tt.at)
			if res.Targets == nil {
				t.Fatalf("Targets is nil")
			}
			if !slices.Equal(res.Targets, tt.want) {
				t.Errorf("targets = %v, want %v\n%s", res.Targets, tt.want, dump(res))
			}
		})
	}
}

func dump(res Result) string {
	b, _ := json.MarshalIndent(res, "", "  ")
	return string(b)
}

// TestDocsExamples routes through the documented example configurations
// (docs/proxmox-notify.md §1.7) as shipped in testdata/config.
func TestDocsExamples(t *testing.T) {
	load := func(t *testing.T, name string) *config.Config {
		t.Helper()
		pub, err := os.ReadFile("../../testdata/config/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return parse(t, string(pub)+"\n"+silence, "", config.FlavorPVE)
	}
	t.Run("workday and night-and-weekend are complementary", func(t *testing.T) {
		r := &Router{Config: load(t, "docs-matcher-calendar.cfg"), Location: time.UTC}
		base := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC) // Monday
		for h := 0; h < 7*24; h++ {
			at := base.Add(time.Duration(h) * time.Hour)
			res := r.Route(mkEvent(event.Info), at)
			work := at.Weekday() >= time.Monday && at.Weekday() <= time.Friday && at.Hour() >= 9 && at.Hour() < 17
			want := []string{"on-call-admins"}
			if work {
				want = []string{"admin"}
			}
			if !slices.Equal(res.Targets, want) {
				t.Fatalf("%s %s: %v, want %v", at.Weekday(), at.Format("15:04"), res.Targets, want)
			}
		}
	})
	t.Run("backup and cluster failures", func(t *testing.T) {
		r := &Router{Config: load(t, "docs-matcher-fields.cfg")}
		cases := []struct {
			ev   *event.Event
			want []string
		}{
			{mkEvent(event.Error, "type", "vzdump", "hostname", "pve1"), []string{"backup-admins"}},
			{mkEvent(event.Info, "type", "vzdump"), []string{}},
			{mkEvent(event.Error, "type", "fencing"), []string{"cluster-admins"}},
			{mkEvent(event.Error, "type", "replication", "job-id", "100-0"), []string{"cluster-admins"}},
			{mkEvent(event.Info, "type", "package-updates"), []string{}},
		}
		for _, c := range cases {
			if res := r.Route(c.ev, monday10); !slices.Equal(res.Targets, c.want) {
				t.Errorf("%v: %v, want %v", c.ev.Fields, res.Targets, c.want)
			}
		}
	})
	t.Run("always-matches", func(t *testing.T) {
		r := &Router{Config: load(t, "docs-matcher-always.cfg")}
		if res := r.Route(mkEvent(event.Notice), monday10); !slices.Equal(res.Targets, []string{"admin"}) {
			t.Errorf("%v", res.Targets)
		}
	})
}

// TestLegacyGroupsAndFilters checks the documented meaning of group and
// filter sections (seed 001, docs/proxmox-notify.md §2.6) on testdata's example:
// route-all names group everyone (filter always-matches) with members
// mail-admins (filter warnings-up), phone (filter errors-only) and archive,
// and group quiet (filter never-matches) with member archive.
func TestLegacyGroupsAndFilters(t *testing.T) {
	pub, err := os.ReadFile("../../testdata/config/legacy-group-filter.cfg")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := os.ReadFile("../../testdata/config/legacy-group-filter.priv.cfg")
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{Config: parse(t, string(pub)+"\n"+silence, string(priv), config.FlavorPVE)}
	tests := []struct {
		sev         event.Severity
		want        []string
		wantSkipped []string
	}{
		{event.Info, []string{"archive"}, []string{"mail-admins", "phone", "quiet"}},
		{event.Notice, []string{"archive"}, []string{"mail-admins", "phone", "quiet"}},
		{event.Warning, []string{"archive", "mail-admins"}, []string{"phone", "quiet"}},
		{event.Error, []string{"archive", "mail-admins", "phone"}, []string{"quiet"}},
		{event.Unknown, []string{"archive", "mail-admins", "phone"}, []string{"quiet"}},
	}
	for _, tt := range tests {
		res := r.Route(mkEvent(tt.sev), monday10)
		if !slices.Equal(res.Targets, tt.want) {
			t.Errorf("%s: targets %v, want %v", tt.sev, res.Targets, tt.want)
		}
		var skipped []string
		for _, s := range res.Skipped {
			skipped = append(skipped, s.Target)
		}
		if !slices.Equal(skipped, tt.wantSkipped) {
			t.Errorf("%s: skipped %v, want %v\n%s", tt.sev, skipped, tt.wantSkipped, dump(res))
		}
	}
	res := r.Route(mkEvent(event.Info), monday10)
	want := []SkippedTarget{
		{"mail-admins", "legacy filter 'warnings-up' does not match (member of group 'everyone')"},
		{"phone", "legacy filter 'errors-only' does not match (member of group 'everyone')"},
		{"quiet", "legacy filter 'never-matches' of group 'quiet' does not match"},
	}
	if !slices.Equal(res.Skipped, want) {
		t.Errorf("skipped = %+v", res.Skipped)
	}

	// A target's own filter applies when a matcher names it directly too,
	// and a disabled group member is skipped.
	cfg := parse(t, "sendmail: direct\n\tmailto d@example.com\n\tfilter errs\n\n"+
		"sendmail: off\n\tmailto o@example.com\n\tdisable 1\n\n"+
		"group: grp\n\tendpoint off\n\tendpoint direct\n\n"+
		"filter: errs\n\tmin-severity error\n\n"+
		"matcher: mm\n\ttarget direct\n\ttarget grp\n\n"+silence, "", config.FlavorPVE)
	r = &Router{Config: cfg}
	res = r.Route(mkEvent(event.Warning), monday10)
	if len(res.Targets) != 0 || len(res.Skipped) != 2 ||
		res.Skipped[0] != (SkippedTarget{"direct", "legacy filter 'errs' does not match"}) ||
		res.Skipped[1] != (SkippedTarget{"off", "target is disabled (member of group 'grp')"}) {
		t.Errorf("warning: %s", dump(res))
	}
	if res = r.Route(mkEvent(event.Error), monday10); !slices.Equal(res.Targets, []string{"direct"}) {
		t.Errorf("error: %s", dump(res))
	}
}

// TestUnknownTargetIsSkipped: a matcher naming a target that does not
// exist loads with a warning and the name is skipped when routing, as
// Proxmox does; the other targets still get the event.
func TestUnknownTargetIsSkipped(t *testing.T) {
	cfg, err := config.Parse("n.cfg", []byte("matcher: mm\n\ttarget nowhere\n\ttarget mail-to-root\n"), "p.cfg", nil, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.HasPrefix(cfg.Warnings[0].Error(), "n.cfg:2: warning: matcher 'mm': target 'nowhere' does not exist") {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
	res := (&Router{Config: cfg}).Route(mkEvent(event.Error), monday10)
	if !slices.Equal(res.Targets, []string{"mail-to-root"}) || len(res.Skipped) != 1 || res.Skipped[0] != (SkippedTarget{"nowhere", "no such target"}) {
		t.Errorf("route: %s", dump(res))
	}
}

// TestHandBuiltConfig routes a config that did not go through the loader:
// unknown names are reported, not fatal (Proxmox logs and carries on).
func TestHandBuiltConfig(t *testing.T) {
	cfg := &config.Config{
		Matchers: []*config.Matcher{{Name: "m", Targets: []string{"ghost", "ghost"}}},
		Groups:   []*config.Group{{Name: "g", Endpoints: []string{"ghost2"}}},
	}
	cfg.Matchers = append(cfg.Matchers, &config.Matcher{Name: "m2", Mode: "any", Targets: []string{"g"}})
	res := (&Router{Config: cfg}).Route(mkEvent(event.Info), monday10)
	want := []SkippedTarget{{"ghost", "no such target"}, {"ghost2", "no such target (member of group 'g')"}}
	if len(res.Targets) != 0 || !slices.Equal(res.Skipped, want) {
		t.Errorf("%s", dump(res))
	}
	if res.Matchers[0].Mode != "all" {
		t.Errorf("empty mode should read as all")
	}
}

func TestCalendarLocation(t *testing.T) {
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, targets+silence+"matcher: office\n\tmatch-calendar mon..fri 9-17\n\ttarget t-a\n", "", config.FlavorPVE)
	at := time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC) // 10:00 in Vienna, 04:00 in New York
	if res := (&Router{Config: cfg, Location: vienna}).Route(mkEvent(event.Info), at); !slices.Equal(res.Targets, []string{"t-a"}) {
		t.Errorf("Vienna: %v", res.Targets)
	}
	if res := (&Router{Config: cfg, Location: ny}).Route(mkEvent(event.Info), at); len(res.Targets) != 0 {
		t.Errorf("New York: %v", res.Targets)
	}
	// The time's own zone does not matter, only the router's.
	if res := (&Router{Config: cfg, Location: vienna}).Route(mkEvent(event.Info), at.In(ny)); !slices.Equal(res.Targets, []string{"t-a"}) {
		t.Errorf("Vienna with a New York time: %v", res.Targets)
	}
}

func TestExplanation(t *testing.T) {
	cfg := parse(t, targets+
		"matcher: errors\n\tmatch-severity warning,error\n\tmatch-field exact:type=vzdump\n\tmatch-calendar mon..fri 8-18\n\ttarget t-a\n\n"+
		"matcher: not-vzdump\n\tmatch-field exact:type=vzdump\n\tinvert-match true\n\ttarget t-b\n\n"+
		"matcher: any-of\n\tmode any\n\tmatch-severity info\n\tmatch-field regex:hostname=^pve\n\ttarget t-c\n\ttarget t-off\n\n"+
		"matcher: everything\n\tinvert-match true\n\n"+
		"matcher: off\n\tdisable true\n\ttarget t-a\n", "", config.FlavorPVE)
	res := (&Router{Config: cfg, Location: time.UTC}).Route(mkEvent(event.Error, "type", "vzdump", "hostname", "pve1"), monday10)
	want := Result{
		Matchers: []MatcherResult{
			{Name: "errors", Matched: true, Mode: "all", Rules: []RuleResult{
				{"match-severity warning,error", true}, {"match-field exact:type=vzdump", true}, {"match-calendar mon..fri 8-18", true},
			}, Targets: []string{"t-a"}, Reason: "mode all: 3 of 3 rules matched"},
			{Name: "not-vzdump", Matched: false, Mode: "all", InvertMatch: true, Rules: []RuleResult{
				{"match-field exact:type=vzdump", true},
			}, Targets: []string{"t-b"}, Reason: "mode all: 1 of 1 rules matched; inverted: no match"},
			{Name: "any-of", Matched: true, Mode: "any", Rules: []RuleResult{
				{"match-severity info", false}, {"match-field regex:hostname=^pve", true},
			}, Targets: []string{"t-c", "t-off"}, Reason: "mode any: 1 of 2 rules matched"},
			{Name: "everything", Matched: true, Mode: "all", InvertMatch: true, Rules: []RuleResult{}, Targets: []string{},
				Reason: "no rules: matches everything (invert-match does not apply to a matcher without rules)"},
			{Name: "off", Disabled: true, Mode: "all", Rules: []RuleResult{}, Targets: []string{"t-a"}, Reason: "disabled: skipped"},
			{Name: "default-matcher", Matched: true, Mode: "all", Rules: []RuleResult{}, Targets: []string{"mail-to-root"}, Reason: "no rules: matches everything"},
		},
		Targets: []string{"mail-to-root", "t-a", "t-c"},
		Skipped: []SkippedTarget{{"t-off", "target is disabled"}},
	}
	got, _ := json.MarshalIndent(res, "", "  ")
	exp, _ := json.MarshalIndent(want, "", "  ")
	if string(got) != string(exp) {
		t.Errorf("got:\n%s\nwant:\n%s", got, exp)
	}
	// The JSON contract: "targets" is always an array.
	empty := (&Router{Config: parse(t, silence, "", config.FlavorPVE)}).Route(mkEvent(event.Info), monday10)
	b, err := json.Marshal(empty)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"targets":[]`) || strings.Contains(string(b), `"skipped":`) {
		t.Errorf("empty result JSON: %s", b)
	}
}

// TestRouteIsPure routes the same event twice and checks that neither the
// event nor the config changed and the results are equal.
func TestRouteIsPure(t *testing.T) {
	cfg := parse(t, targets+"matcher: mm\n\tmatch-field exact:type=a\n\ttarget t-a\n", "", config.FlavorPVE)
	ev := mkEvent(event.Info, "type", "a")
	r := &Router{Config: cfg}
	a, _ := json.Marshal(r.Route(ev, monday10))
	b, _ := json.Marshal(r.Route(ev, monday10))
	if string(a) != string(b) || len(ev.Fields) != 1 || len(cfg.Matchers[0].Targets) != 1 {
		t.Errorf("route not pure: %s vs %s", a, b)
	}
	res := r.Route(ev, monday10)
	res.Matchers[0].Targets[0] = "changed"
	if cfg.Matchers[0].Targets[0] != "t-a" {
		t.Errorf("result aliases the config")
	}
}

// TestRouteConcurrent routes from several goroutines at once: a loaded
// config is read-only, so the daemon may share one Router (run with -race).
func TestRouteConcurrent(t *testing.T) {
	cfg := parse(t, targets+"matcher: mm\n\tmatch-severity error\n\tmatch-calendar mon..fri 0-23\n\ttarget t-a\n", "", config.FlavorPVE)
	r := &Router{Config: cfg}
	done := make(chan []string)
	for range 4 {
		go func() {
			var last []string
			for range 200 {
				last = r.Route(mkEvent(event.Error), monday10).Targets
			}
			done <- last
		}()
	}
	for range 4 {
		select {
		case got := <-done:
			if !slices.Equal(got, []string{"mail-to-root", "t-a"}) {
				t.Errorf("targets = %v", got)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("concurrent routing did not finish within 30s")
		}
	}
}

func TestReasonTable(t *testing.T) {
	for _, mode := range []string{"all", "any", "odd"} {
		for n := 0; n <= maxCached+2; n++ {
			for hits := 0; hits <= n; hits++ {
				for _, inv := range []bool{false, true} {
					for _, matched := range []bool{false, true} {
						if got, want := reason(mode, hits, n, inv, matched), buildReason(mode, hits, n, inv, matched); got != want {
							t.Fatalf("reason(%s,%d,%d,%v,%v) = %q, want %q", mode, hits, n, inv, matched, got, want)
						}
					}
				}
			}
		}
	}
	if got := buildReason("any", 1, 10, true, false); got != "mode any: 1 of 10 rules matched; inverted: no match" {
		t.Errorf("buildReason = %q", got)
	}
}
