package build

import (
	"net/netip"
	"strings"
	"testing"

	"herald/internal/config"
	"herald/internal/event"
)

func TestCheckRelayNotSelf(t *testing.T) {
	d := config.DefaultDaemon() // smtp-listen 127.0.0.1:25, [::1]:25
	tests := []struct {
		host  string
		port  int
		mode  string
		loops bool
	}{
		{"127.0.0.1", 25, "insecure", true},
		{"localhost", 0, "insecure", true}, // the mode's port: 25
		{"::1", 25, "starttls", true},
		{"localhost", 0, "starttls", false}, // 587
		{"127.0.0.1", 2525, "insecure", false},
		{"smtp.example.com", 25, "insecure", false},
		{"192.0.2.1", 25, "insecure", false},
	}
	for _, tt := range tests {
		err := checkRelayNotSelf(d, tt.host, tt.port, tt.mode)
		if (err != nil) != tt.loops {
			t.Errorf("%s:%d %s: err = %v, want loop %v", tt.host, tt.port, tt.mode, err, tt.loops)
		}
		if err != nil && !strings.Contains(err.Error(), "loop") {
			t.Errorf("unhelpful error %v", err)
		}
	}
	d.SMTPListen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:2525")}
	if err := checkRelayNotSelf(d, "127.0.0.1", 2525, "insecure"); err == nil {
		t.Error("a relay on the configured listener's port passes")
	}
}

// An alert's generatorURL is its event on the status page of the first
// HTTP listener; without a listener there is none.
func TestStatusPageEventURL(t *testing.T) {
	f := statusPageEventURL([]netip.AddrPort{netip.MustParseAddrPort("[::1]:8025"), netip.MustParseAddrPort("127.0.0.1:9")})
	if got := f(&event.Event{ID: "18ed-0a.b"}); got != "http://[::1]:8025/event/18ed-0a.b" {
		t.Errorf("generatorURL %q", got)
	}
	if statusPageEventURL(nil) != nil {
		t.Error("a link without a status page")
	}
}
