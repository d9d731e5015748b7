package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Section.Target gives each target section's typed form, credentials as
// Secret, and says when a value cannot be used.
func TestSectionTarget(t *testing.T) {
	pub := "file: events\n\tpath /var/lib/herald/events.jsonl\n\n" +
		"mbox: root-box\n\tpath /var/mail/root\n\n" +
		"journal: jr\n\tidentifier herald-test\n\n" +
		"exec: script\n\tcommand /usr/local/bin/notify\n\ttimeout 45s\n\n" +
		"gotify: phone\n\tserver https://gotify.example.com\n\n" +
		"ntfy: push\n\tserver https://ntfy.sh\n\ttopic t1\n\tpriority 4\n\ttags backup\n\ttags pve\n\n" +
		"webhook: hook\n\turl https://example.com/{{ secrets.path }}\n\tmethod post\n" +
		"\theader name=Content-Type,value=YXBwbGljYXRpb24vanNvbg==\n\tbody eyJ0ZXh0Ijoie3sgbWVzc2FnZSB9fSJ9\n\n" +
		"alertmanager: am\n\turl http://127.0.0.1:9093\n\turl http://127.0.0.1:9095\n\tlabel-field job_id\n" +
		"\tresolve-after 1h\n\tresend-interval 2m\n\tusername herald\n\n" +
		"smtp: relay\n\tserver mail.example.com\n\tport 587\n\tmode starttls\n\tusername alice\n" +
		"\tfrom-address Proxmox VE <pve@example.com>\n\tmailto ops@example.com\n\tmailto-user root@pam\n\n" +
		"smtp: anon\n\tserver mail.example.com\n\tfrom-address pve@example.com\n\n" +
		"sendmail: local\n\tmailto-user root@pam\n\tauthor PVE\n\tsendmail-path /bin/sh\n"
	priv := "gotify: phone\n\ttoken gotify-token-1\n\n" +
		"ntfy: push\n\ttoken ntfy-token-1\n\n" +
		"webhook: hook\n\tsecret name=path,value=c2VjcmV0LXBhdGg=\n\n" +
		"alertmanager: am\n\tpassword am-pass-1\n\n" +
		"smtp: relay\n\tpassword smtp-pass-1\n\n" +
		"smtp: anon\n\tpassword unused-pass\n"
	cfg := mustParse(t, pub, priv, LoadOptions{})
	want := map[string]any{
		"events":   FileTarget{Path: "/var/lib/herald/events.jsonl"},
		"root-box": MboxTarget{Path: "/var/mail/root"},
		"jr":       JournalTarget{Identifier: "herald-test"},
		"script":   ExecTarget{Command: "/usr/local/bin/notify", Timeout: 45 * time.Second},
		"phone":    GotifyTarget{Server: "https://gotify.example.com", Token: NewSecret("gotify-token-1")},
		"push": NtfyTarget{Server: "https://ntfy.sh", Topic: "t1", Token: NewSecret("ntfy-token-1"), Priority: 4,
			Tags: []string{"backup", "pve"}},
		"hook": WebhookTarget{URL: "https://example.com/{{ secrets.path }}", Method: "post",
			Headers: []NameValue{{"Content-Type", "application/json"}}, Body: `{"text":"{{ message }}"}`,
			Secrets: map[string]Secret{"path": NewSecret("secret-path")}},
		"am": AlertmanagerTarget{URLs: []string{"http://127.0.0.1:9093", "http://127.0.0.1:9095"}, LabelFields: []string{"job_id"},
			ResolveAfter: time.Hour, ResendInterval: 2 * time.Minute, Username: "herald", Password: NewSecret("am-pass-1")},
		"relay": SMTPTarget{Server: "mail.example.com", Port: 587, Mode: "starttls", Username: "alice", Password: NewSecret("smtp-pass-1"),
			FromAddress: "Proxmox VE <pve@example.com>", Recipients: MailRecipients{Mailto: []string{"ops@example.com"}, MailtoUser: []string{"root@pam"}}},
		// Proxmox authenticates only with a username: no password then.
		"anon":  SMTPTarget{Server: "mail.example.com", FromAddress: "pve@example.com"},
		"local": SendmailTarget{Author: "PVE", SendmailPath: "/bin/sh", Recipients: MailRecipients{MailtoUser: []string{"root@pam"}}},
	}
	for name, w := range want {
		sec := cfg.Target(name)
		if sec == nil {
			t.Fatalf("no target %s", name)
		}
		got, err := sec.Target()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s:\n got %#v\nwant %#v", name, got, w)
		}
	}
}

// A value the schema lets through but the target cannot use is an error
// of that one section (the factory disables the target).
func TestSectionTargetUnusable(t *testing.T) {
	for _, sec := range []*Section{
		{Type: "exec", Name: "x", props: []prop{{key: "command", value: "/bin/true"}, {key: "timeout", value: "soon"}}},
		{Type: "smtp", Name: "x", props: []prop{{key: "server", value: "h"}, {key: "port", value: "twenty-five"}}},
		{Type: "ntfy", Name: "x", props: []prop{{key: "priority", value: "high"}}},
		{Type: "alertmanager", Name: "x", props: []prop{{key: "timeout", value: "1 minute"}}},
		{Type: "carrier-pigeon", Name: "x"},
	} {
		if _, err := sec.Target(); err == nil {
			t.Errorf("%s with %v: no error", sec.Type, sec.props)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v", sec.Type, err)
		}
	}
}
