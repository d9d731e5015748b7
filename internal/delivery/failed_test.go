package delivery

import (
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

func TestFailedEvent(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 20, 30, 400, time.UTC)
	d := Delivery{ID: "ev1.gotify", EventID: "ev1", Target: "gotify", Attempts: 7,
		LastError: "401 from https://push.example/message?token=s3cr3t-T0KEN"}
	orig := &event.Event{ID: "ev1", Title: "disk almost full", Fields: map[string]string{event.FieldType: "smartd"}}
	mail := &event.Event{ID: "ev2", Title: "cron output", Mail: &event.Mail{From: "cron@pve1"}}
	tests := []struct {
		name       string
		orig       *event.Event
		o          FailedOptions
		wantNil    bool
		body       []string // each must appear
		notInBody  []string
		wantFields map[string]string
	}{
		{name: "event", orig: orig, o: FailedOptions{Hostname: "pve1", At: at},
			body: []string{"herald gave up delivering event ev1 to target gotify after 7 attempts.",
				"Last error: 401 from", "Original title: disk almost full"},
			wantFields: map[string]string{"type": FailedType, "hostname": "pve1", "target": "gotify",
				"event-id": "ev1", "delivery-id": "ev1.gotify", "original-type": "smartd"}},
		{name: "secrets masked", orig: orig, o: FailedOptions{Hostname: "pve1", At: at, Secrets: []string{"s3cr3t-T0KEN"}},
			body: []string{"token=<masked>"}, notInBody: []string{"s3cr3t-T0KEN"}},
		{name: "unreadable original", orig: nil, o: FailedOptions{Hostname: "pve1", At: at},
			notInBody: []string{"Original title"}, wantFields: map[string]string{"original-type": ""}},
		{name: "relay names the remote recipients and the sender", orig: mail,
			o:          FailedOptions{Hostname: "pve1", At: at, Remote: []string{"a@example.org", "b@example.net"}},
			body:       []string{"Recipients: a@example.org, b@example.net\n", "Sender: cron@pve1\n"},
			wantFields: map[string]string{"recipients": "a@example.org, b@example.net"}},
		{name: "no event about a failed delivery-failed event",
			orig:    &event.Event{Fields: map[string]string{event.FieldType: FailedType}},
			wantNil: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := FailedEvent(d, tc.orig, tc.o)
			if tc.wantNil {
				if ev != nil {
					t.Fatalf("got an event: %+v", ev)
				}
				return
			}
			if ev == nil {
				t.Fatal("no event")
			}
			if ev.Severity != event.Error || !ev.Timestamp.Equal(at.Truncate(time.Second)) || ev.ID == "" || ev.ID == d.EventID {
				t.Fatalf("severity %v, time %v, id %q", ev.Severity, ev.Timestamp, ev.ID)
			}
			if ev.Title != "herald on pve1: delivery to gotify failed" {
				t.Fatalf("title %q", ev.Title)
			}
			for _, s := range tc.body {
				if !strings.Contains(ev.Body, s) {
					t.Errorf("body lacks %q:\n%s", s, ev.Body)
				}
			}
			for _, s := range tc.notInBody {
				if strings.Contains(ev.Body, s) {
					t.Errorf("body has %q:\n%s", s, ev.Body)
				}
			}
			for k, v := range tc.wantFields {
				if got := ev.Fields[k]; got != v {
					t.Errorf("field %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
