package config

import (
	"strings"
	"testing"
	"time"
)

func TestHistoryKeys(t *testing.T) {
	d, err := ParseDaemon("herald.cfg", []byte("history-retention 7d\nhistory-max-size 16M\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.HistoryRetention != 7*24*time.Hour || d.HistoryMaxSize != 16<<20 {
		t.Fatalf("got %v %d", d.HistoryRetention, d.HistoryMaxSize)
	}
	if d := DefaultDaemon(); d.HistoryRetention != 0 || d.HistoryMaxSize != 0 {
		t.Fatalf("defaults are left to the history package: %v %d", d.HistoryRetention, d.HistoryMaxSize)
	}
	for _, bad := range []string{"history-retention 0s", "history-retention soon", "history-max-size 1K", "history-max-size lots"} {
		_, err := ParseDaemon("herald.cfg", []byte(bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "herald.cfg:1:") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
