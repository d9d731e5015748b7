package config

import (
	"strings"
	"testing"
)

func TestClassifiersDisable(t *testing.T) {
	tests := []struct {
		text, want, err string
	}{
		{"classifiers-disable logwatch\n", "logwatch", ""},
		{"classifiers-disable logwatch, cron zfs\nclassifiers-disable mdadm\n", "logwatch cron zfs mdadm", ""},
		{"classifiers-disable logwatch\nclassifiers-disable nosuch\n", "", `herald.cfg:2: invalid classifiers-disable "nosuch": "nosuch" is no built-in classifier`},
	}
	for _, tc := range tests {
		d, err := ParseDaemon("herald.cfg", []byte(tc.text))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.text, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		if got := strings.Join(d.ClassifiersDisable, " "); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.text, got, tc.want)
		}
	}
}

// A classifier section's regexps, groups and field lines arrive typed.
func TestClassifierSection(t *testing.T) {
	cfg, err := Parse("n.cfg", []byte("classifier: c1\n\tmatch-subject ^(?P<host>\\S+) (?P<job_id>\\d+)$\n\tmatch-from x\n\ttype t\n\tfield job-id=${job_id}\n\nclassifier: d1\n\tmatch-body y\n\tseverity notice\n"), "", nil, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Classifiers) != 2 {
		t.Fatalf("got %d classifiers", len(cfg.Classifiers))
	}
	c := cfg.Classifiers[0]
	if c.Subject == nil || c.From == nil || c.Body != nil || c.Type != "t" || c.HasSeverity || len(c.Fields) != 1 || c.Fields[0].Value != "${job_id}" || c.Line != 1 {
		t.Errorf("first classifier: %+v", c)
	}
	if d := cfg.Classifiers[1]; d.Type != "" || !d.HasSeverity || d.Severity.String() != "notice" {
		t.Errorf("second classifier: %+v", d)
	}
}
