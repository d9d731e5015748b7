package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
	"herald/internal/spool"
)

func TestEventAccepted(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   event.Event
		noHost bool // Options.Hostname empty
	}{
		{
			name: "minimal",
			body: `{"severity":"warning","fields":{"type":"backup"}}`,
			want: event.Event{Timestamp: fixedNow.Truncate(time.Second), Severity: event.Warning,
				Fields: map[string]string{"type": "backup", "hostname": "pve1"}},
		},
		{
			name: "full, id ignored, own hostname kept",
			body: `{"id":"client-id","timestamp":"2025-01-02T03:04:05+01:00","severity":"error",
				"title":"Backup <failed> & more","body":"line 1\nline 2\n",
				"fields":{"type":"vzdump","hostname":"node7","job-id":"backup-42"}}`,
			want: event.Event{Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)), Severity: event.Error,
				Title: "Backup <failed> & more", Body: "line 1\nline 2\n",
				Fields: map[string]string{"type": "vzdump", "hostname": "node7", "job-id": "backup-42"}},
		},
		{
			name: "nulls count as absent",
			body: `{"id":null,"timestamp":null,"severity":"info","title":null,"body":null,"fields":{"type":"x"}}`,
			want: event.Event{Timestamp: fixedNow.Truncate(time.Second), Severity: event.Info,
				Fields: map[string]string{"type": "x", "hostname": "pve1"}},
		},
		{
			name:   "no hostname configured",
			body:   `{"severity":"unknown","fields":{"type":"x"}}`,
			noHost: true,
			want: event.Event{Timestamp: fixedNow.Truncate(time.Second), Severity: event.Unknown,
				Fields: map[string]string{"type": "x"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			opt := Options{Hostname: "pve1"}
			if tc.noHost {
				opt.Hostname = ""
			}
			s, _ := newServer(sub, opt)
			rec := do(s, "POST", "/api/v1/events", tc.body)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			call, ev := sub.only(t)
			reply := jsonBody(t, rec.Body.String())
			if len(reply) != 1 || !spool.ValidID(fmt.Sprint(reply["id"])) {
				t.Errorf("reply %s, want {\"id\": spool ID}", rec.Body)
			}
			if call.env.Kind != spool.KindEvent || call.env.Source != "http" ||
				!call.env.Received.Equal(fixedNow) || call.env.Remote != "127.0.0.1:40000" {
				t.Errorf("envelope %+v", call.env)
			}
			if int64(len(call.body)) != call.max {
				t.Errorf("maxSize %d for a %d-byte body", call.max, len(call.body))
			}
			if ev.ID != "" {
				t.Errorf("stored event has ID %q; the daemon assigns it", ev.ID)
			}
			got, _ := json.Marshal(ev)
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("stored event\n got %s\nwant %s", got, want)
			}
			if !strings.Contains(string(call.body), "Backup <failed> & more") && tc.want.Title != "" {
				t.Errorf("title HTML-escaped in the stored JSON: %s", call.body)
			}
		})
	}
}

func TestEventRejected(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, "empty body"},
		{"not JSON", `severity=info`, "invalid JSON"},
		{"array", `[{"severity":"info"}]`, "must be a JSON object"},
		{"string", `"hello"`, "must be a JSON object"},
		{"truncated", `{"severity":"info","fields":{"type":"x"}`, "invalid JSON"},
		{"trailing data", `{"severity":"info","fields":{"type":"x"}} {}`, "data after the object"},
		{"trailing garbage", `{"severity":"info","fields":{"type":"x"}}x`, "invalid JSON"},
		{"unknown key", `{"severity":"info","fields":{"type":"x"},"priority":5}`, `unknown key "priority"`},
		{"key case matters", `{"Severity":"info","fields":{"type":"x"}}`, `unknown key "Severity"`},
		{"type at top level", `{"severity":"info","type":"x"}`, `"type" (it belongs in "fields")`},
		{"duplicate key", `{"severity":"info","severity":"error","fields":{"type":"x"}}`, `duplicate key "severity"`},
		{"duplicate field", `{"severity":"info","fields":{"type":"x","type":"y"}}`, `fields: duplicate key "type"`},
		{"no severity", `{"fields":{"type":"x"}}`, "severity is required"},
		{"null severity", `{"severity":null,"fields":{"type":"x"}}`, "severity is required"},
		{"bad severity", `{"severity":"critical","fields":{"type":"x"}}`, `invalid severity "critical"`},
		{"severity case", `{"severity":"INFO","fields":{"type":"x"}}`, `invalid severity "INFO"`},
		{"severity number", `{"severity":3,"fields":{"type":"x"}}`, "severity: must be a string"},
		{"no fields", `{"severity":"info"}`, "fields.type is required"},
		{"empty type", `{"severity":"info","fields":{"type":""}}`, "fields.type is required"},
		{"fields array", `{"severity":"info","fields":["type"]}`, "fields: must be an object of strings"},
		{"field number", `{"severity":"info","fields":{"type":"x","count":3}}`, "fields.count: must be a string"},
		{"field null", `{"severity":"info","fields":{"type":"x","n":null}}`, ""},
		{"empty field name", `{"severity":"info","fields":{"type":"x","":"v"}}`, "empty field name"},
		{"title object", `{"severity":"info","title":{},"fields":{"type":"x"}}`, "title: must be a string"},
		{"id number", `{"id":7,"severity":"info","fields":{"type":"x"}}`, "id: must be a string"},
		{"bad timestamp", `{"timestamp":"yesterday","severity":"info","fields":{"type":"x"}}`, "want RFC 3339"},
		{"unix timestamp", `{"timestamp":1700000000,"severity":"info","fields":{"type":"x"}}`, "timestamp: must be a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			s, _ := newServer(sub, Options{})
			rec := do(s, "POST", "/api/v1/events", tc.body)
			if tc.want == "" {
				// A JSON null is not a string: encoding/json would accept it
				// as "", which would silently drop the field. Pin it down.
				if rec.Code != http.StatusBadRequest {
					t.Fatalf("status %d, want 400 for a null field value; body %s", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body)
			}
			msg := fmt.Sprint(jsonBody(t, rec.Body.String())["error"])
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if n := len(sub.submissions()); n != 0 {
				t.Errorf("%d submissions of an invalid event", n)
			}
		})
	}
}

func TestEventMethod(t *testing.T) {
	s, _ := newServer(&fakeSub{}, Options{})
	rec := do(s, "GET", "/api/v1/events", "")
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
		t.Fatalf("GET: status %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	jsonBody(t, rec.Body.String())
}

// bodyOfSize returns a valid event JSON of exactly n bytes.
func bodyOfSize(n int) string {
	head, tail := `{"severity":"info","fields":{"type":"x"},"body":"`, `"}`
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

func TestEventSizeLimit(t *testing.T) {
	sub := &fakeSub{}
	s, _ := newServer(sub, Options{})
	base := serve(t, s)

	// Exactly at the limit: accepted.
	if r := fetch(t, "POST", base+"/api/v1/events", bodyOfSize(MaxEventSize)); r.code != http.StatusAccepted {
		t.Fatalf("body of MaxEventSize bytes: status %d, want 202; %s", r.code, r.body)
	}
	// One byte more, with a Content-Length: refused before reading.
	r := fetch(t, "POST", base+"/api/v1/events", bodyOfSize(MaxEventSize+1))
	if r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("body of MaxEventSize+1 bytes: status %d, want 413; %s", r.code, r.body)
	}
	jsonBody(t, r.body)

	// Chunked, so no Content-Length: refused while reading.
	req, err := http.NewRequest("POST", base+"/api/v1/events",
		struct{ *strings.Reader }{strings.NewReader(bodyOfSize(2 * MaxEventSize))})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != -1 && req.ContentLength != 0 {
		t.Fatalf("test request has a Content-Length (%d); it should be chunked", req.ContentLength)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversized body: status %d, want 413", resp.StatusCode)
	}
	if n := len(sub.submissions()); n != 1 {
		t.Fatalf("%d submissions, want 1 (only the one within the limit)", n)
	}
}

func TestEventSpoolFailures(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		code       int
		retryAfter string
	}{
		{"disk full", temporaryErr, http.StatusServiceUnavailable, "60"},
		{"too large", spool.ErrTooLarge, http.StatusRequestEntityTooLarge, ""},
		{"other", errors.New("spool: invalid envelope kind"), http.StatusInternalServerError, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics()
			s, logs := newServer(&fakeSub{err: tc.err}, Options{Metrics: m})
			rec := do(s, "POST", "/api/v1/events", `{"severity":"info","fields":{"type":"x"}}`)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; %s", rec.Code, tc.code, rec.Body)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			msg := fmt.Sprint(jsonBody(t, rec.Body.String())["error"])
			if strings.Contains(msg, "/var/lib/herald") || strings.Contains(msg, "invalid envelope") {
				t.Errorf("reply leaks the internal error: %q", msg)
			}
			if !strings.Contains(logs.String(), tc.err.Error()) {
				t.Errorf("log does not carry the error detail:\n%s", logs)
			}
			if got := acceptedHTTP(t, m); got != 0 {
				t.Errorf("a failed submission counted as accepted (%v)", got)
			}
		})
	}
}

// TestReplyWaitsForSubmit proves that 202 is sent only after Submit
// returned: while Submit blocks, no reply reaches the client.
func TestReplyWaitsForSubmit(t *testing.T) {
	sub := &fakeSub{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s, _ := newServer(sub, Options{})
	base := serve(t, s)

	got := make(chan response, 1)
	go func() {
		r, err := fetchErr("POST", base+"/api/v1/events", `{"severity":"info","fields":{"type":"x"}}`)
		if err != nil {
			r = response{code: -1, body: err.Error()}
		}
		got <- r
	}()
	select {
	case <-sub.entered:
	case <-time.After(deadline):
		t.Fatalf("Submit not called within %v", deadline)
	}
	// Submit is blocked: there must be no reply. (A bounded look, not a
	// synchronisation: the handler cannot reply before release.)
	select {
	case r := <-got:
		close(sub.release)
		t.Fatalf("reply %d %q arrived while Submit was still running", r.code, r.body)
	case <-time.After(200 * time.Millisecond):
	}
	close(sub.release)
	select {
	case r := <-got:
		if r.code != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", r.code, r.body)
		}
	case <-time.After(deadline):
		t.Fatalf("no reply within %v of Submit returning", deadline)
	}
}

// TestEventIntoRealSpool submits through the real spool: the committed
// entry is an event entry from "http" whose payload reads back as the
// event, and the reply's ID is the entry's.
func TestEventIntoRealSpool(t *testing.T) {
	state := t.TempDir()
	sp, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	s, _ := newServer(sp, Options{Hostname: "pve1", Metrics: m})
	base := serve(t, s)

	body := `{"severity":"error","title":"Täglich: Backup fehlgeschlagen","body":"vzdump exit 1\n",` +
		`"timestamp":"2025-03-14T03:00:00Z","fields":{"type":"vzdump","job-id":"nightly"}}`
	r := fetch(t, "POST", base+"/api/v1/events", body)
	if r.code != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	id := fmt.Sprint(jsonBody(t, r.body)["id"])

	entries, err := sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d spool entries, want 1", len(entries))
	}
	e := entries[0]
	if e.ID != id {
		t.Errorf("reply ID %q, entry ID %q", id, e.ID)
	}
	if e.Env.Kind != spool.KindEvent || e.Env.Source != "http" {
		t.Errorf("envelope %+v, want kind event from http", e.Env)
	}
	raw, err := sp.ReadAll(e)
	if err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("entry payload is not event JSON: %v\n%s", err, raw)
	}
	want := event.Event{Timestamp: time.Date(2025, 3, 14, 3, 0, 0, 0, time.UTC), Severity: event.Error,
		Title: "Täglich: Backup fehlgeschlagen", Body: "vzdump exit 1\n",
		Fields: map[string]string{"type": "vzdump", "job-id": "nightly", "hostname": "pve1"}}
	gotJSON, _ := json.Marshal(ev)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("stored event\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if got := acceptedHTTP(t, m); got != 1 {
		t.Errorf("herald_messages_accepted_total{source=http} = %v, want 1", got)
	}
}

// TestRealSpoolUnavailable answers 503 and leaves nothing when the spool
// directory is gone (the temporary failure the shim maps to exit 75).
func TestRealSpoolUnavailable(t *testing.T) {
	state := t.TempDir()
	sp, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	incoming := filepath.Join(sp.Dir(), "incoming")
	if err := os.RemoveAll(incoming); err != nil {
		t.Fatal(err)
	}
	s, _ := newServer(sp, Options{})
	rec := do(s, "POST", "/api/v1/events", `{"severity":"info","fields":{"type":"x"}}`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "60" {
		t.Fatalf("status %d, Retry-After %q; want 503 and 60: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	rec = do(s, "GET", "/api/push/tok?status=down", "")
	if rec.Code != http.StatusServiceUnavailable || jsonBody(t, rec.Body.String())["ok"] != false {
		t.Fatalf("push: status %d %s; want 503 ok:false", rec.Code, rec.Body)
	}
	if _, err := os.Stat(incoming); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("incoming/ reappeared or is unreadable: %v", err)
	}
}
