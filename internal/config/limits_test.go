package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLimitsParse(t *testing.T) {
	in := `smtp-max-sessions 10
smtp-max-sessions-per-client 3
smtp-session-time 90s
smtp-mails-per-minute 5
fd-reserve 32
http-host Herald.Example.org.
http-host pve1
spool-min-free 1G
spool-max-per-uid 8M
quarantine-max-age 7d
quarantine-max-size 1M
`
	d, err := ParseDaemon("h.cfg", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{
		SMTPMaxSessions: 10, SMTPMaxSessionsPerClient: 3, SMTPSessionTime: 90 * time.Second,
		SMTPMailsPerMinute: 5, FDReserve: 32, HTTPHosts: []string{"herald.example.org", "pve1"},
		SpoolMinFree: 1 << 30, SpoolMaxPerUID: 8 << 20, QuarantineMaxAge: 7 * 24 * time.Hour, QuarantineMaxSize: 1 << 20,
	}
	if !reflect.DeepEqual(d.Limits, want) {
		t.Errorf("got  %+v\nwant %+v", d.Limits, want)
	}
	if d, _ := ParseDaemon("h.cfg", nil); !reflect.DeepEqual(d.Limits, DefaultLimits()) {
		t.Errorf("defaults %+v", d.Limits)
	}
}

func TestLimitsInvalid(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"smtp-max-sessions 0", "must be a whole number from 1"},
		{"smtp-session-time forever", "must be a positive duration"},
		{"fd-reserve 3", "from 16"},
		{"http-host evil_name!", "must be a host name"},
		{"spool-min-free -1", "must be a positive size"},
		{"quarantine-max-size lots", "must be a positive size"},
	} {
		_, err := ParseDaemon("h.cfg", []byte(tc.line+"\n"))
		if err == nil || !strings.Contains(err.Error(), "h.cfg:1:") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want h.cfg:1: … %s", tc.line, err, tc.want)
		}
	}
}
