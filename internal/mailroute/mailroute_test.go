package mailroute

import (
	"slices"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	l := NewLocal("pve1", "pve1.example.com", "", "PVE1")
	tests := []struct {
		name          string
		rcpts         []string
		relay         bool
		local, remote []string
		relayed       bool
	}{
		{"all local", []string{"root", "postmaster@localhost", "alice@pve1", "bob@PVE1.Example.Com.", "<carol@localhost.localdomain>", "x@[127.0.0.1]"}, true,
			[]string{"root", "postmaster@localhost", "alice@pve1", "bob@PVE1.Example.Com.", "carol@localhost.localdomain", "x@[127.0.0.1]"}, nil, false},
		{"all remote", []string{"boss@example.com", "list@lists.example.org"}, true, nil, []string{"boss@example.com", "list@lists.example.org"}, true},
		{"mixed", []string{"root", "boss@example.com"}, true, []string{"root"}, []string{"boss@example.com"}, true},
		{"remote without relay", []string{"boss@example.com"}, false, nil, []string{"boss@example.com"}, false},
		{"subdomain is remote", []string{"a@mail.pve1.example.com"}, true, nil, []string{"a@mail.pve1.example.com"}, true},
		{"duplicates folded", []string{"Boss@example.com", "boss@EXAMPLE.com", " root ", "root"}, true, []string{"root"}, []string{"Boss@example.com"}, true},
		{"nothing", nil, true, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := l.Decide(tt.rcpts, tt.relay)
			if !slices.Equal(d.Local, tt.local) || !slices.Equal(d.Remote, tt.remote) || d.Relayed != tt.relayed {
				t.Errorf("Decide(%q) = %+v, want local %q remote %q relayed %v", tt.rcpts, d, tt.local, tt.remote, tt.relayed)
			}
		})
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("root", "boss@example.com")
	f.Add("<a@pve1.>", "@")
	f.Fuzz(func(t *testing.T, a, b string) {
		l := NewLocal("pve1", "pve1.example.com")
		local, remote := l.Split([]string{a, b})
		if len(local)+len(remote) > 2 {
			t.Fatalf("Split made up recipients: %q %q", local, remote)
		}
		for _, r := range local {
			if !l.IsLocal(r) {
				t.Fatalf("local %q is not IsLocal", r)
			}
		}
		for _, r := range remote {
			if l.IsLocal(r) {
				t.Fatalf("remote %q is IsLocal", r)
			}
		}
	})
}

func TestHops(t *testing.T) {
	tests := []struct {
		raw  string
		want int
	}{
		{"Subject: x\n\nReceived: in the body\n", 0},
		{"Received: from a\r\n\tby b\r\nreceived: from c\r\nSubject: x\r\n\r\nReceived: body\r\n", 2},
		{strings.Repeat("Received: x\n", 31) + "\nbody", 31},
		{"Received:x\n", 1},
		{"", 0},
	}
	for _, tt := range tests {
		if got := Hops([]byte(tt.raw)); got != tt.want {
			t.Errorf("Hops(%q) = %d, want %d", tt.raw, got, tt.want)
		}
	}
}

func TestShown(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		rcpts []string
		want  []string
	}{
		{"no header: all", "Subject: x\n\nb\n", []string{"boss@example.com"}, []string{"boss@example.com"}},
		{"bcc stays hidden", "To: root\nSubject: x\n\nb\n", []string{"root", "secret@example.com"}, []string{"root"}},
		{"bare header name, qualified envelope", "To: root\n\nb\n", []string{"root@pve1.example.org"}, []string{"root@pve1.example.org"}},
		{"to and cc", "To: Boss <BOSS@example.com>\nCc: ops@example.org\n\nb\n", []string{"boss@example.com", "ops@example.org", "x@example.net"},
			[]string{"boss@example.com", "ops@example.org"}},
		{"header names nobody of the envelope", "To: list@example.org\n\nb\n", []string{"member@example.net"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Shown([]byte(tt.raw), tt.rcpts); !slices.Equal(got, tt.want) {
				t.Errorf("Shown = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzHeaderAddresses: addresses from any header are non-empty and on one
// line (a quoted local part may hold spaces or commas), and Shown only
// ever returns envelope recipients.
func FuzzHeaderAddresses(f *testing.F) {
	f.Add([]byte("To: boss@example.com, root\nCc: \"A, B\" <ab@example.org>\n\nbody\n"))
	f.Add([]byte("To: <>,, ,\"\nBcc: x@\n\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, a := range HeaderAddresses(raw, "To", "Cc", "Bcc") {
			if a == "" || strings.ContainsAny(a, "\r\n") {
				t.Fatalf("address %q from %q", a, raw)
			}
		}
		env := []string{"root", "boss@example.com"}
		for _, r := range Shown(raw, env) {
			if !slices.Contains(env, r) {
				t.Fatalf("Shown made up %q", r)
			}
		}
	})
}
