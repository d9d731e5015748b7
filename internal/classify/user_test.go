package classify

import (
	"testing"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailconv"
)

func TestUserClassifiers(t *testing.T) {
	cfg, err := config.Parse("notifications.cfg", []byte(`classifier: backup-script
	match-from ^backup@
	match-subject ^\[(?P<hostname>[a-z0-9-]+)\] backup (?P<result>OK|FAILED): (?P<job_name>\S+)$
	type backup-script
	severity error
	field job=${job_name}
	field summary=$result on $hostname

classifier: cron-override
	match-subject ^Cron <root@
	match-body (?m)^ALERT
	type cron-alert
	severity warning

classifier: off
	match-subject .
	type never
	disable true
`), "", nil, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain := Chain(cfg.Classifiers, nil)
	tests := []struct {
		name, raw, classifier, typ string
		sev                        event.Severity
		fields                     map[string]string
	}{
		{"all rules match", "From: backup@files1\nSubject: [files1] backup FAILED: nightly-home\n\nrsync failed\n",
			"classifier:backup-script", "backup-script", event.Error,
			map[string]string{"hostname": "files1", "result": "FAILED", "job_name": "nightly-home", "job": "nightly-home", "summary": "FAILED on files1"}},
		{"one rule fails", "From: alice@example.org\nSubject: [files1] backup FAILED: nightly-home\n\nrsync failed\n",
			"", "system-mail", event.Unknown, map[string]string{"hostname": "h"}},
		{"user classifiers run before the built-ins", "From: root (Cron Daemon)\nSubject: Cron <root@pve1> check\nX-Cron-Env: <A=1>\n\nALERT: disk\n",
			"classifier:cron-override", "cron-alert", event.Warning, map[string]string{"hostname": "h"}},
		{"built-in when the user's do not match", "From: root (Cron Daemon)\nSubject: Cron <root@pve1> check\nX-Cron-Env: <A=1>\n\nall fine\n",
			"cron", "cron", event.Info, map[string]string{"hostname": "pve1", "user": "root", "command": "check", "job-status": "ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, res := mailconv.ConvertClassified([]byte(tc.raw), mailconv.Options{ID: "x", Hostname: "h", Classifiers: chain})
			if res.Classifier != tc.classifier || ev.Type() != tc.typ || ev.Severity != tc.sev {
				t.Errorf("classifier %q type %q severity %v; want %q %q %v", res.Classifier, ev.Type(), ev.Severity, tc.classifier, tc.typ, tc.sev)
			}
			for k, v := range tc.fields {
				if ev.Fields[k] != v {
					t.Errorf("field %s = %q, want %q", k, ev.Fields[k], v)
				}
			}
		})
	}
}

func TestExpand(t *testing.T) {
	g := map[string]string{"a": "1", "b_c": "2"}
	for in, want := range map[string]string{
		"$a-${b_c}": "1-2", "x$": "x$", "${a": "${a", "$zz.": ".", "cost $5": "cost ", "$a$a": "11", "": "",
	} {
		if got := expand(in, g); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}
