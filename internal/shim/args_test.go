package shim

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"herald/internal/sysexits"
)

func TestParseArgs(t *testing.T) {
	type want struct {
		mode      Mode
		t, i, v   bool
		sender    string
		senderSet bool
		fullName  string
		rcpts     []string
	}
	for _, c := range []struct {
		name string
		prog string
		args []string
		want want
	}{
		// Every argv captured from the real clients (docs/clients.md §3).
		{"debian cron", "sendmail", []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "a@x,b@y"},
			want{i: true, fullName: "CronDaemon", rcpts: []string{"a@x", "b@y"}}},
		{"debian cron, list with spaces", "sendmail", []string{"-i", "-FCronDaemon", "-B8BITMIME", "-oem", "a@x, b@y,"},
			want{i: true, fullName: "CronDaemon", rcpts: []string{"a@x", "b@y"}}},
		{"cronie", "sendmail", []string{"-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "user"},
			want{t: true, i: true, fullName: "CronDaemon", sender: "user", senderSet: true}},
		{"dcron", "sendmail", []string{"-t", "-oem", "-i"}, want{t: true, i: true}},
		{"bsd-mailx", "sendmail", []string{"-i", "-t"}, want{t: true, i: true}},
		{"bsd-mailx -r", "sendmail", []string{"-i", "-t", "-f", "ops@example.org"},
			want{t: true, i: true, sender: "ops@example.org", senderSet: true}},
		{"mailutils", "sendmail", []string{"-oi", "-f", "user@host", "-t"},
			want{t: true, i: true, sender: "user@host", senderSet: true}},
		{"logwatch, mdadm", "sendmail", []string{"-t"}, want{t: true}},
		{"unattended-upgrades", "sendmail", []string{"-oi", "-t"}, want{t: true, i: true}},
		{"php", "sendmail", []string{"-t", "-i"}, want{t: true, i: true}},
		{"git send-email", "sendmail", []string{"-i", "a@x", "b@y", "c@z"},
			want{i: true, rcpts: []string{"a@x", "b@y", "c@z"}}},
		{"git send-email envelope sender", "sendmail", []string{"-f", "me@x", "-i", "a@x", "b@y"},
			want{i: true, sender: "me@x", senderSet: true, rcpts: []string{"a@x", "b@y"}}},
		{"proxmox", "sendmail", []string{"-B", "8BITMIME", "-f", "root", "--", "root@pam"},
			want{sender: "root", senderSet: true, rcpts: []string{"root@pam"}}},
		{"-N never", "sendmail", []string{"-N", "never", "-f", "x", "--", "y"},
			want{sender: "x", senderSet: true, rcpts: []string{"y"}}},
		// getopt forms.
		{"clustered", "sendmail", []string{"-ti", "r"}, want{t: true, i: true, rcpts: []string{"r"}}},
		{"clustered with value", "sendmail", []string{"-tfs@x", "r"}, want{t: true, sender: "s@x", senderSet: true, rcpts: []string{"r"}}},
		{"attached -f", "sendmail", []string{"-faddr@x", "r"}, want{sender: "addr@x", senderSet: true, rcpts: []string{"r"}}},
		{"-r", "sendmail", []string{"-r", "<a@b>", "r"}, want{sender: "a@b", senderSet: true, rcpts: []string{"r"}}},
		{"null sender", "sendmail", []string{"-f", "<>", "r"}, want{sender: "", senderSet: true, rcpts: []string{"r"}}},
		{"-f with display name", "sendmail", []string{"-f", "Bacula <bacula@x>", "r"}, want{sender: "bacula@x", senderSet: true, rcpts: []string{"r"}}},
		{"-o i separate", "sendmail", []string{"-o", "i", "r"}, want{i: true, rcpts: []string{"r"}}},
		{"-F separate", "sendmail", []string{"-F", "Cron Daemon", "r"}, want{fullName: "Cron Daemon", rcpts: []string{"r"}}},
		{"-F cannot inject lines", "sendmail", []string{"-F", "x\nBcc: evil@x", "r"}, want{fullName: "x Bcc: evil@x", rcpts: []string{"r"}}},
		{"-v", "sendmail", []string{"-v", "r"}, want{v: true, rcpts: []string{"r"}}},
		{"ignored options", "sendmail", []string{"-Am", "-Ac", "-G", "-U", "-h", "5", "-L", "tag", "-X", "/log", "-C", "/etc/x",
			"-R", "hdrs", "-V", "envid", "-x", "-n", "-m", "-c", "-e", "m", "-p", "smtp", "-O", "opt=x", "-odb", "-oQ/q", "-B8BITMIME", "-Nsuccess,failure", "r"},
			want{rcpts: []string{"r"}}},
		{"-bm", "sendmail", []string{"-bm", "r"}, want{rcpts: []string{"r"}}},
		{"options end at the first operand", "sendmail", []string{"r1", "-t"}, want{rcpts: []string{"r1", "-t"}}},
		{"-- then dash operand", "sendmail", []string{"--", "-x@y"}, want{rcpts: []string{"-x@y"}}},
		{"recipient with display name", "sendmail", []string{"Root <root@x>"}, want{rcpts: []string{"root@x"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := ParseArgs(c.prog, c.args)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", c.args, err)
			}
			got := want{o.Mode, o.ExtractRecipients, o.IgnoreDots, o.Verbose, o.Sender, o.SenderSet, o.FullName, o.Recipients}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseArgs(%q)\n got %+v\nwant %+v", c.args, got, c.want)
			}
		})
	}
}

func TestParseArgsModes(t *testing.T) {
	for _, c := range []struct {
		prog string
		args []string
		mode Mode
	}{
		{"sendmail", nil, ModeDeliver},
		{"sendmail", []string{"-bp"}, ModeList},
		{"mailq", nil, ModeList},
		{"sendmail", []string{"-bi"}, ModeAliases},
		{"sendmail", []string{"-I"}, ModeAliases},
		{"newaliases", nil, ModeAliases},
		{"sendmail", []string{"-bs"}, ModeSMTP},
		{"sendmail", []string{"-q"}, ModeRunQueue},
		{"sendmail", []string{"-q30m"}, ModeRunQueue},
		{"sendmail", []string{"-qRexample.org"}, ModeRunQueue},
		{"sendmail", []string{"-v", "-q"}, ModeRunQueue},
		{"sendmail", []string{"-bp", "-bm"}, ModeDeliver},
	} {
		o, err := ParseArgs(c.prog, c.args)
		if err != nil {
			t.Errorf("%s %q: %v", c.prog, c.args, err)
			continue
		}
		if o.Mode != c.mode {
			t.Errorf("%s %q: mode %v, want %v", c.prog, c.args, o.Mode, c.mode)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-z"}, "invalid option -- 'z'"},
		{[]string{"-tz", "r"}, "invalid option -- 'z'"},
		{[]string{"--help"}, "invalid option -- '-'"},
		{[]string{"-f"}, "option requires an argument -- 'f'"},
		{[]string{"-t", "-F"}, "option requires an argument -- 'F'"},
		{[]string{"-bv", "r"}, "-bv is not supported"},
		{[]string{"-bt"}, "-bt is not supported"},
		{[]string{"-bd"}, "-bd is not supported"},
		{[]string{"-bx"}, "invalid -b mode"},
		{[]string{"-\x01"}, `invalid option -- '\x01'`},
	} {
		_, err := ParseArgs("sendmail", c.args)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.ExitCode() != sysexits.Usage {
			t.Errorf("ParseArgs(%q) = %v, want a usage error", c.args, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseArgs(%q) = %q, want it to contain %q", c.args, err, c.want)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		"-FCronDaemon\x00-i\x00-B8BITMIME\x00-oem\x00a@x,b@y",
		"-i\x00-t",
		"-oi\x00-f\x00user@host\x00-t",
		"-B\x008BITMIME\x00-f\x00root\x00--\x00root@pam",
		"-bp", "-q30m", "-z", "-f", "-tfx", "--\x00-", "-bv", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var args []string
		if s != "" {
			args = strings.Split(s, "\x00")
		}
		o, err := ParseArgs("sendmail", args)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || ue.ExitCode() != sysexits.Usage {
				t.Fatalf("ParseArgs(%q): error %v is not a usage error (exit 64)", args, err)
			}
			return
		}
		for _, r := range o.Recipients {
			if r == "" || strings.ContainsAny(r, "\r\n,") {
				t.Fatalf("ParseArgs(%q): bad recipient %q", args, r)
			}
		}
		if strings.ContainsAny(o.FullName+o.Sender, "\r\n") {
			t.Fatalf("ParseArgs(%q): newline in -F/-f: %q %q", args, o.FullName, o.Sender)
		}
	})
}
