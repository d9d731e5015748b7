package smtpd

import (
	"bytes"
	"context"
	"herald/internal/testkit"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Real clients, as the lab captured them (docs/clients.md §2). A missing client
// is a failure: scripts/install-test-deps.sh installs them.

func needClient(t *testing.T, name string) string {
	t.Helper()
	return testkit.Tool(t, name, "listed in scripts/install-test-deps.sh")
}

// run runs a client with stdin and fails the test unless it exits 0.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out.String())
	}
	return out.String()
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBsmtp(t *testing.T) {
	bsmtp := needClient(t, "/usr/sbin/bsmtp")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		stdin     string
		args      []string
		from      string
		rcpts     []string
		wantInMsg []string
	}{{
		name:      "lab capture",
		stdin:     "body\n",
		args:      []string{"-f", "a@b", "-s", "subj", "root@localhost"},
		from:      "a@b",
		rcpts:     []string{"root@localhost"},
		wantInMsg: []string{"From: a@b\r\n", "Subject: subj\r\n", "To: root@localhost\r\n", "\r\n\r\nbody\r\n"},
	}, {
		name:  "raw 8-bit UTF-8 after HELO, unqualified addresses, Cc",
		stdin: "Grüße aus dem Backup ✓\nJob 42: OK\n",
		args: []string{"-8", "-f", "(Bacula) <bacula>", "-s", "Bacula: Backup OK of fd ✓",
			"-c", "ops@example.org", "root"},
		from:      "bacula@herald.test",
		rcpts:     []string{"root@herald.test", "ops@example.org"},
		wantInMsg: []string{"Subject: Bacula: Backup OK of fd ✓\r\n", "charset=UTF-8", "\r\n\r\nGrüße aus dem Backup ✓\r\nJob 42: OK\r\n"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			ts := start(t, sub, Options{}, "127.0.0.1:0")
			args := append([]string{"-h", "127.0.0.1:" + port(t, ts.addr)}, tc.args...)
			run(t, tc.stdin, bsmtp, args...)
			got := sub.only(t)
			if got.env.From != tc.from || !slices.Equal(got.env.Recipients, tc.rcpts) || got.env.Helo != host {
				t.Errorf("envelope from %q rcpts %q helo %q; want %q %q %q", got.env.From, got.env.Recipients, got.env.Helo, tc.from, tc.rcpts, host)
			}
			for _, w := range tc.wantInMsg {
				if !bytes.Contains(got.body, []byte(w)) {
					t.Errorf("message lacks %q:\n%s", w, got.body)
				}
			}
		})
	}
}

func TestSwaks(t *testing.T) {
	swaks := needClient(t, "swaks")
	cases := []struct {
		name   string
		listen string
		server string
		extra  []string
	}{
		{"plain", "127.0.0.1:0", "127.0.0.1", nil},
		{"pipelining", "127.0.0.1:0", "127.0.0.1", []string{"--pipeline"}},
		{"helo", "127.0.0.1:0", "127.0.0.1", []string{"--protocol", "SMTP"}},
		{"ipv6", "[::1]:0", "::1", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			ts := start(t, sub, Options{}, tc.listen)
			args := append([]string{"--server", tc.server, "--port", port(t, ts.addr),
				"--from", "a@example.org", "--to", "root@localhost,ops@example.org",
				"--helo", "client.test"}, tc.extra...)
			out := run(t, "", swaks, args...)
			got := sub.only(t)
			if got.env.From != "a@example.org" || !slices.Equal(got.env.Recipients, []string{"root@localhost", "ops@example.org"}) || got.env.Helo != "client.test" {
				t.Errorf("envelope %+v", got.env)
			}
			if !bytes.Contains(got.body, []byte("\r\n\r\nThis is a test mailing\r\n")) || !bytes.Contains(got.body, []byte("X-Mailer: swaks")) {
				t.Errorf("message:\n%s", got.body)
			}
			if !strings.Contains(out, "250 2.0.0 Ok: queued as "+got.id) {
				t.Errorf("swaks did not see the queue ID %s:\n%s", got.id, out)
			}
			// With --pipeline swaks sends MAIL, RCPTs and DATA before it
			// reads any of their replies.
			sentData, gotMail := strings.Index(out, " -> DATA"), strings.Index(out, "<-  250 2.0.0 Roger")
			if pipelined := sentData >= 0 && gotMail > sentData; pipelined != (tc.name == "pipelining") {
				t.Errorf("pipelined = %v:\n%s", pipelined, out)
			}
		})
	}
}

const smtplibScript = `
import smtplib, sys
from email.message import EmailMessage
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10) as s:
    s.sendmail('a@example.org', ['root@localhost', 'b@example.org'],
               b'Subject: plain\r\nTo: root@localhost\r\n\r\nhello\r\n.leading dot\r\n')
    m = EmailMessage()
    m['From'] = 'J\u00f6rg <j\u00f6rg@example.org>'
    m['To'] = 'root@localhost'
    m['Subject'] = 'Sicherung fehlgeschlagen \u2717'
    m.set_content('Gr\u00fc\u00dfe\n')
    refused = s.send_message(m)
    assert not refused, refused
    assert s.has_extn('smtputf8') and s.has_extn('8bitmime') and s.has_extn('pipelining')
    assert not s.has_extn('auth') and not s.has_extn('starttls')
    print('size', s.esmtp_features['size'])
`

func TestPythonSmtplib(t *testing.T) {
	py := needClient(t, "python3")
	for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			sub := &fakeSub{}
			ts := start(t, sub, Options{MaxMessageSize: 1 << 20}, listen)
			host, p, err := net.SplitHostPort(ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			out := run(t, "", py, "-c", smtplibScript, host, p)
			if !strings.Contains(out, "size 1048576") {
				t.Errorf("script output %q", out)
			}
			got := sub.submissions()
			if len(got) != 2 {
				t.Fatalf("submitted %d messages", len(got))
			}
			if got[0].env.From != "a@example.org" || !slices.Equal(got[0].env.Recipients, []string{"root@localhost", "b@example.org"}) ||
				string(got[0].body) != "Subject: plain\r\nTo: root@localhost\r\n\r\nhello\r\n.leading dot\r\n" {
				t.Errorf("sendmail: %+v %q", got[0].env, got[0].body)
			}
			// A non-ASCII sender makes smtplib use SMTPUTF8 and send the
			// headers as raw UTF-8.
			if got[1].env.From != "jörg@example.org" || !slices.Equal(got[1].env.Recipients, []string{"root@localhost"}) {
				t.Errorf("send_message envelope %+v", got[1].env)
			}
			for _, w := range []string{"Subject: Sicherung fehlgeschlagen ✗\r\n", "From: Jörg <jörg@example.org>\r\n"} {
				if !bytes.Contains(got[1].body, []byte(w)) {
					t.Errorf("send_message body lacks %q:\n%s", w, got[1].body)
				}
			}
		})
	}
}
