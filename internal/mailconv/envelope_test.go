package mailconv

import (
	"testing"

	"herald/internal/event"
)

func TestRecordEnvelope(t *testing.T) {
	raw := []byte("From: root <root@pve1>\r\nTo: ops@example.org\r\nCc: root\r\nSubject: s\r\n\r\nbody\r\n")
	tests := []struct {
		name     string
		mail     *event.Mail
		to, from string // "" when the field must be absent
	}{
		{"shown recipients and sender", &event.Mail{Raw: raw, From: "root@pve1", Recipients: []string{"ops@example.org", "root"}},
			"ops@example.org, root", "root@pve1"},
		{"a blind copy stays hidden", &event.Mail{Raw: raw, From: "root@pve1", Recipients: []string{"ops@example.org", "boss@example.org"}},
			"ops@example.org", "root@pve1"},
		{"null sender keeps the header's", &event.Mail{Raw: raw, Recipients: []string{"root"}}, "root", ""},
		{"no mail", nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := &event.Event{Mail: tc.mail, Fields: map[string]string{}}
			RecordEnvelope(ev)
			for k, want := range map[string]string{FieldTo: tc.to, FieldFrom: tc.from} {
				got, ok := ev.Fields[k]
				if want == "" && ok {
					t.Errorf("field %s = %q, want none", k, got)
				}
				if want != "" && got != want {
					t.Errorf("field %s = %q, want %q", k, got, want)
				}
			}
		})
	}
	if n := (Classification{}).Name(); n != "none" {
		t.Errorf("no classifier: %q", n)
	}
	if n := (Classification{Classifier: "smartd"}).Name(); n != "smartd" {
		t.Errorf("smartd: %q", n)
	}
}
