package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/event"
	"herald/internal/spool"
	"herald/internal/testkit"
)

// kumaToken looks like a token Uptime Kuma generates.
const kumaToken = "Xq7pL2mN9vR4sT1wY6zA3bC8dE5fG0hJ"

func TestPushTokenHash(t *testing.T) {
	sum := sha256.Sum256([]byte(kumaToken))
	want := hex.EncodeToString(sum[:])[:12]
	if got := PushTokenHash(kumaToken); got != want {
		t.Fatalf("PushTokenHash = %q, want %q (first 12 hex of SHA-256)", got, want)
	}
}

func TestPush(t *testing.T) {
	hash := PushTokenHash(kumaToken)
	tests := []struct {
		name, method, query string
		sev                 event.Severity
		status, title, ping string
		bodyHas             []string
	}{
		{name: "runbook hook: POST up with msg", method: "POST", query: "?status=up&msg=Backup_OK",
			sev: event.Info, status: "up", title: "Backup_OK", bodyHas: []string{"reported up", "Message: Backup_OK"}},
		{name: "GET without status is up", method: "GET", query: "",
			sev: event.Info, status: "up", title: "push " + hash + " up", bodyHas: []string{"Push monitor " + hash + " reported up."}},
		{name: "empty status is up", method: "GET", query: "?status=&msg=",
			sev: event.Info, status: "up", title: "push " + hash + " up"},
		{name: "down", method: "GET", query: "?status=down&msg=disk+full%21",
			sev: event.Error, status: "down", title: "disk full!", bodyHas: []string{"reported down", "Message: disk full!"}},
		{name: "down without msg", method: "POST", query: "?status=down",
			sev: event.Error, status: "down", title: "push " + hash + " down"},
		{name: "any other status is down, as in Kuma", method: "GET", query: "?status=failed",
			sev: event.Error, status: "down", title: "push " + hash + " down"},
		{name: "status is case-sensitive, as in Kuma", method: "GET", query: "?status=UP",
			sev: event.Error, status: "down", title: "push " + hash + " down"},
		{name: "ping", method: "GET", query: "?status=up&msg=OK&ping=12.50",
			sev: event.Info, status: "up", title: "OK", ping: "12.5", bodyHas: []string{"Ping: 12.5 ms"}},
		{name: "ping zero", method: "GET", query: "?ping=0",
			sev: event.Info, status: "up", title: "push " + hash + " up", ping: "0"},
		{name: "empty ping ignored", method: "GET", query: "?ping=",
			sev: event.Info, status: "up", title: "push " + hash + " up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			m := newMetrics()
			s, _ := newServer(sub, Options{Hostname: "pve1", Metrics: m})
			rec := do(s, tc.method, "/api/push/"+kumaToken+tc.query, "")
			if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"ok":true}` {
				t.Fatalf("status %d body %q, want 200 {\"ok\":true}", rec.Code, rec.Body)
			}
			call, ev := sub.only(t)
			if call.env.Kind != spool.KindEvent || call.env.Source != "push" {
				t.Errorf("envelope %+v", call.env)
			}
			if ev.Severity != tc.sev || ev.Title != tc.title {
				t.Errorf("severity %v title %q, want %v %q", ev.Severity, ev.Title, tc.sev, tc.title)
			}
			want := map[string]string{"type": "push", "hostname": "pve1", "push-token": hash, "status": tc.status,
				"monitor": "nightly-backup"}
			if tc.ping != "" {
				want["ping"] = tc.ping
			}
			if fmt.Sprint(ev.Fields) != fmt.Sprint(want) {
				t.Errorf("fields %v, want %v", ev.Fields, want)
			}
			if !ev.Timestamp.Equal(fixedNow.Truncate(1e9)) {
				t.Errorf("timestamp %v, want the time of the push", ev.Timestamp)
			}
			for _, s := range tc.bodyHas {
				if !strings.Contains(ev.Body, s) {
					t.Errorf("body %q lacks %q", ev.Body, s)
				}
			}
			if strings.Contains(string(call.body), kumaToken) {
				t.Errorf("the stored event contains the token: %s", call.body)
			}
			if got := acceptedHTTP(t, m); got != 1 {
				t.Errorf("accepted{http} = %v, want 1", got)
			}
		})
	}
}

func TestPushRejected(t *testing.T) {
	tests := []struct {
		name, method, target string
		code                 int
		msg                  string
	}{
		{"ping not a number", "GET", "/api/push/tok?ping=fast", 400, "not a number"},
		{"ping NaN", "GET", "/api/push/tok?ping=NaN", 400, "not a number"},
		{"ping negative", "GET", "/api/push/tok?ping=-1", 400, "negative"},
		{"ping in seconds of a day", "GET", "/api/push/tok?ping=86400001", 400, "exceeds the maximum"},
		{"ping infinite", "GET", "/api/push/tok?ping=Inf", 400, "exceeds the maximum"},
		{"token too long", "GET", "/api/push/" + strings.Repeat("t", maxTokenLen+1), 400, "longer than"},
		{"PUT", "PUT", "/api/push/tok", 405, "method not allowed"},
		{"DELETE", "DELETE", "/api/push/tok?status=down", 405, "method not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &fakeSub{}
			s, _ := newServer(sub, Options{})
			rec := do(s, tc.method, tc.target, "")
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			reply := jsonBody(t, rec.Body.String())
			if reply["ok"] != false || !strings.Contains(fmt.Sprint(reply["msg"]), tc.msg) {
				t.Errorf("reply %s, want ok:false and a msg saying %q", rec.Body, tc.msg)
			}
			if n := len(sub.submissions()); n != 0 {
				t.Errorf("%d submissions", n)
			}
		})
	}
	// The maximum ping itself is fine, as in Kuma.
	s, _ := newServer(&fakeSub{}, Options{})
	if rec := do(s, "GET", "/api/push/tok?ping=86400000", ""); rec.Code != http.StatusOK {
		t.Fatalf("ping=86400000: status %d: %s", rec.Code, rec.Body)
	}
	// No token at all is not a push URL.
	if rec := do(s, "GET", "/api/push/", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("/api/push/: status %d, want 404", rec.Code)
	}
}

func TestPushSpoolFailure(t *testing.T) {
	s, _ := newServer(&fakeSub{err: temporaryErr}, Options{})
	rec := do(s, "POST", "/api/push/tok?status=down", "")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "60" {
		t.Fatalf("status %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if reply := jsonBody(t, rec.Body.String()); reply["ok"] != false || reply["msg"] == "" {
		t.Fatalf("reply %s, want Kuma's error shape", rec.Body)
	}
}

// TestPushIntoRealSpool runs the runbook's hook line against herald with
// the real spool: the entry reads back as a push event.
func TestPushIntoRealSpool(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newServer(sp, Options{Hostname: "pve1"})
	base := serve(t, s)
	r := fetch(t, "POST", base+"/api/push/"+kumaToken+"?status=up&msg=Backup_OK", "")
	if r.code != http.StatusOK || strings.TrimSpace(r.body) != `{"ok":true}` {
		t.Fatalf("status %d body %q", r.code, r.body)
	}
	entries, err := sp.Pending()
	if err != nil || len(entries) != 1 {
		t.Fatalf("Pending: %d entries, %v; want 1", len(entries), err)
	}
	raw, err := sp.ReadAll(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if ev.Type() != PushType || ev.Fields[FieldPushToken] != PushTokenHash(kumaToken) || ev.Severity != event.Info || ev.Title != "Backup_OK" {
		t.Fatalf("event %+v", ev)
	}
	file, err := os.ReadFile(filepath.Join(sp.Dir(), "incoming", entries[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(file), kumaToken) {
		t.Fatalf("the spool entry contains the token:\n%s", file)
	}
}

// TestTokenNeverLogged drives every push path that logs (accepted,
// rejected, spool failure, refused peer, cross-site) and checks that the
// log, the replies and the stored events name the token only by its hash.
func TestTokenNeverLogged(t *testing.T) {
	const token = "s3cr3t-Tok3n-that-must-not-leak"
	hash := PushTokenHash(token)
	sub := &fakeSub{}
	log, logs := newLogger()
	known := func(tok string) (string, bool) { return "job", tok == token }
	s := New(sub, Options{Logger: log, PushMonitor: known})
	failing := New(&fakeSub{err: temporaryErr}, Options{Logger: log, PushMonitor: known})

	var replies []string
	run := func(srv *Server, method, target, remote string, hdr map[string]string) {
		req := newRequest(method, target, "", remote, hdr)
		rec := recorder()
		srv.Handler().ServeHTTP(rec, req)
		replies = append(replies, rec.Body.String())
	}
	p := "/api/push/" + token
	run(s, "GET", p+"?status=up&msg=ok", "127.0.0.1:1", nil)
	run(s, "POST", p+"?status=down&ping=5", "[::1]:1", nil)
	run(s, "GET", p+"?ping=bogus", "127.0.0.1:1", nil)
	run(s, "PUT", p, "127.0.0.1:1", nil)
	run(s, "GET", p, "203.0.113.9:1", nil)
	run(s, "GET", p, "127.0.0.1:1", map[string]string{"Sec-Fetch-Site": "cross-site"})
	run(s, "GET", "/api/push/"+strings.Repeat(token, 20), "127.0.0.1:1", nil)
	run(failing, "GET", p+"?status=down", "127.0.0.1:1", nil)
	run(s, "GET", p+"x?status=up", "127.0.0.1:1", nil) // unknown

	out := logs.String()
	shown := map[string]any{"log": out}
	for i, r := range replies {
		shown[fmt.Sprint("reply ", i)] = r
	}
	for i, c := range sub.submissions() {
		shown[fmt.Sprint("stored entry ", i)] = string(c.body)
		shown[fmt.Sprint("stored envelope ", i)] = c.env
	}
	testkit.NoSecretIn(t, []string{token}, shown)
	for _, want := range []string{"push accepted", "push_token=" + hash, "peer not allowed", "cross-site", "spool write failed",
		"unknown token"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := len(sub.submissions()); n != 2 {
		t.Errorf("%d submissions, want 2", n)
	}
}

// TestPushUnknownToken: a token no heartbeat has is answered as Uptime Kuma
// answers it and spools nothing; so is every token when no lookup is set.
func TestPushUnknownToken(t *testing.T) {
	for _, opt := range []Options{{}, {PushMonitor: func(string) (string, bool) { return "", false }}} {
		sub := &fakeSub{}
		s := New(sub, opt)
		for _, method := range []string{"GET", "POST"} {
			rec := do(s, method, "/api/push/"+kumaToken+"?status=up&msg=Backup_OK", "")
			if rec.Code != http.StatusNotFound {
				t.Fatalf("%s unknown token: status %d, want 404", method, rec.Code)
			}
			reply := jsonBody(t, rec.Body.String())
			if reply["ok"] != false || reply["msg"] != "Monitor not found or not active." {
				t.Fatalf("reply %s, want Kuma's", rec.Body)
			}
		}
		if n := len(sub.submissions()); n != 0 {
			t.Fatalf("%d submissions for an unknown token", n)
		}
	}
}

func TestMonitorsEndpoint(t *testing.T) {
	s, _ := newServer(&fakeSub{}, Options{Monitors: func() any {
		return []map[string]string{{"name": "nightly", "state": "up"}}
	}})
	rec := do(s, "GET", "/api/v1/monitors", "")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `[{"name":"nightly","state":"up"}]` {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	if rec := do(s, "POST", "/api/v1/monitors", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d", rec.Code)
	}
	plain, _ := newServer(&fakeSub{}, Options{})
	if rec := do(plain, "GET", "/api/v1/monitors", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("without monitors: status %d", rec.Code)
	}
}
