package web

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/history"
	"herald/internal/noise"
	"herald/internal/testkit"
)

const token = "0123456789abcdef0123456789abcdef0123456789abcdef"

type fakeQueue struct {
	ds               []delivery.Delivery
	retried, dropped []string
}

func (q *fakeQueue) List() ([]delivery.Delivery, error) { return q.ds, nil }
func (q *fakeQueue) Retry(id string) error {
	for _, d := range q.ds {
		if d.ID == id {
			q.retried = append(q.retried, id)
			return nil
		}
	}
	return delivery.ErrNotFound
}
func (q *fakeQueue) Drop(id string) error { q.dropped = append(q.dropped, id); return nil }

type fakeMonitors []Monitor

func (m fakeMonitors) Monitors() []Monitor { return m }

const xssTitle = `<script>alert("title")</script><img src=x onerror=alert(1)>`
const xssBody = `</pre><script>alert("body")</script>`

func testHandler(q *fakeQueue, mon Monitors) *Handler {
	at := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	entries := []history.Entry{
		{Event: &event.Event{ID: "ev1", Timestamp: at, Severity: event.Warning, Title: "disk almost full", Body: "sda is at 97%",
			Fields: map[string]string{"type": "smartd", "hostname": "pve1"}}, Received: at, Targets: []string{"mail"},
			Deliveries: []history.Delivery{{Target: "mail", State: "done", Attempts: 1, Time: at}}},
		{Event: &event.Event{ID: "ev2", Timestamp: at, Severity: event.Error, Title: xssTitle, Body: xssBody,
			Fields: map[string]string{"type": "cron", "hostname": "pve1", "x<y": `"quoted"`}}, Received: at.Add(time.Minute), Targets: []string{"ntfy"},
			Deliveries: []history.Delivery{{Target: "ntfy", State: "dead", Attempts: 3, Error: "HTTP 401"}}},
	}
	return New(Options{
		Token: token, Hostname: "pve1", Queue: q, Monitors: mon,
		History: func(f history.Filter) ([]history.Entry, error) {
			var out []history.Entry
			for _, e := range entries {
				if (f.EventID == "" || f.EventID == e.Event.ID) && (f.Type == "" || f.Type == e.Event.Type()) {
					out = append(out, e)
				}
			}
			return out, nil
		},
		Held: func() []noise.Item {
			return []noise.Item{{Kind: "dedup", Rule: "disk-warnings", Target: "mail", EventID: "ev1", Title: "disk almost full", Count: 9, Release: at.Add(6 * time.Hour)}}
		},
		Now: func() time.Time { return at },
	})
}

func get(t *testing.T, h http.Handler, target string, mod func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAuth(t *testing.T) {
	h := testHandler(&fakeQueue{}, nil)
	tests := []struct {
		name string
		url  string
		mod  func(*http.Request)
		want int
	}{
		{"no token", "/", nil, 401},
		{"wrong token", "/?token=nope", nil, 401},
		{"event page without token", "/event/ev1", nil, 401},
		{"feed without token", "/feed.atom", nil, 401},
		{"query token", "/?token=" + token, nil, 200},
		{"cookie", "/", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: cookieName, Value: token}) }, 200},
		{"wrong cookie", "/", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: cookieName, Value: "x"}) }, 401},
		{"bearer", "/feed.json", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(t, h, tt.url, tt.mod)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if w.Code == 401 && strings.Contains(w.Body.String(), "disk almost full") {
				t.Fatal("401 page shows an event")
			}
		})
	}
	w := get(t, h, "/?token="+token, nil)
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Name != cookieName || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", c)
	}
	if w.Header().Get("Referrer-Policy") != "no-referrer" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("headers %v", w.Header())
	}
	// No token configured: nothing is served.
	if w := get(t, New(Options{Queue: &fakeQueue{}}), "/?token=", nil); w.Code != 401 {
		t.Fatalf("empty token: %d", w.Code)
	}
}

func authed(r *http.Request) { r.AddCookie(&http.Cookie{Name: cookieName, Value: token}) }

func TestIndexShowsEverything(t *testing.T) {
	q := &fakeQueue{ds: []delivery.Delivery{
		{ID: "ev2.ntfy", EventID: "ev2", Target: "ntfy", State: delivery.StateDead, LastError: "HTTP 401"},
		{ID: "ev3.mail", EventID: "ev3", Target: "mail", State: delivery.StatePending, Attempts: 2},
	}}
	h := testHandler(q, fakeMonitors{{Name: "nightly-backup", State: "down"}})
	body := get(t, h, "/", authed).Body.String()
	for _, want := range []string{"disk almost full", "mail: done", "ntfy: dead", "Dead letters", "ev2.ntfy", "Retry", "Drop",
		"nightly-backup", "Held and deduplicated", "9 repeats", "Pending", `name="csrf" value="` + h.csrf + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	// Monitors absent: no section.
	if body := get(t, testHandler(q, nil), "/", authed).Body.String(); strings.Contains(body, `id="monitors"`) {
		t.Error("monitors section shown without monitors")
	}
	if body := get(t, h, "/?type=cron", authed).Body.String(); strings.Contains(body[strings.Index(body, `id="events"`):strings.Index(body, `id="queue"`)], "disk almost full") {
		t.Error("type filter ignored")
	}
	if body := get(t, h, "/?q=(", authed).Body.String(); !strings.Contains(body, "invalid regular expression") {
		t.Error("bad search not reported")
	}
}

func TestXSSShownAsText(t *testing.T) {
	h := testHandler(&fakeQueue{}, nil)
	for _, page := range []string{"/", "/event/ev2"} {
		body := get(t, h, page, authed).Body.String()
		if strings.Contains(body, "<script>") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s: markup of the event reached the page unescaped", page)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;") {
			t.Errorf("%s: title not shown as text", page)
		}
	}
	body := get(t, h, "/event/ev2", authed).Body.String()
	if !strings.Contains(body, "&lt;/pre&gt;&lt;script&gt;alert(&#34;body&#34;)") || !strings.Contains(body, "x&lt;y") {
		t.Errorf("body or field not shown as text:\n%s", body)
	}
}

func TestEventPage(t *testing.T) {
	q := &fakeQueue{ds: []delivery.Delivery{{ID: "ev2.ntfy", EventID: "ev2", Target: "ntfy", State: delivery.StateDead}}}
	h := testHandler(q, nil)
	w := get(t, h, "/event/ev2", authed)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "HTTP 401") || !strings.Contains(w.Body.String(), `action="/queue/ev2.ntfy/retry"`) {
		t.Fatalf("event page %d:\n%s", w.Code, w.Body)
	}
	if w := get(t, h, "/event/nope", authed); w.Code != 404 {
		t.Fatalf("unknown event: %d", w.Code)
	}
}

func TestActionsNeedCSRF(t *testing.T) {
	q := &fakeQueue{ds: []delivery.Delivery{{ID: "ev2.ntfy", EventID: "ev2", Target: "ntfy", State: delivery.StateDead}}}
	h := testHandler(q, nil)
	post := func(path string, form url.Values, auth bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth {
			authed(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := post("/queue/ev2.ntfy/retry", url.Values{"csrf": {h.csrf}}, false); w.Code != 401 {
		t.Fatalf("without token: %d", w.Code)
	}
	if w := post("/queue/ev2.ntfy/retry", nil, true); w.Code != 403 {
		t.Fatalf("without csrf: %d", w.Code)
	}
	if w := post("/queue/ev2.ntfy/retry", url.Values{"csrf": {"wrong"}}, true); w.Code != 403 {
		t.Fatalf("wrong csrf: %d", w.Code)
	}
	if len(q.retried) != 0 {
		t.Fatal("retried without a valid CSRF token")
	}
	// A GET never acts.
	if w := get(t, h, "/queue/ev2.ntfy/retry", authed); w.Code == 303 || len(q.retried) != 0 {
		t.Fatalf("GET acted: %d", w.Code)
	}
	w := post("/queue/ev2.ntfy/retry", url.Values{"csrf": {h.csrf}}, true)
	if w.Code != 303 || len(q.retried) != 1 || !strings.HasPrefix(w.Header().Get("Location"), "/?done=") {
		t.Fatalf("retry: %d %v %v", w.Code, q.retried, w.Header())
	}
	w = post("/queue/ev2.ntfy/drop", url.Values{"csrf": {h.csrf}, "back": {"https://evil.example/"}}, true)
	if w.Code != 303 || len(q.dropped) != 1 || strings.Contains(w.Header().Get("Location"), "evil") {
		t.Fatalf("drop: %d %v %v", w.Code, q.dropped, w.Header())
	}
	if w := post("/queue/nope/retry", url.Values{"csrf": {h.csrf}}, true); w.Code != 404 {
		t.Fatalf("unknown delivery: %d", w.Code)
	}
}

func TestFeeds(t *testing.T) {
	h := testHandler(&fakeQueue{}, nil)
	w := get(t, h, "/feed.atom", authed)
	var f struct {
		Entries []struct {
			Title   string `xml:"title"`
			Content string `xml:"content"`
		} `xml:"entry"`
	}
	if err := xml.Unmarshal(w.Body.Bytes(), &f); err != nil {
		t.Fatalf("atom: %v\n%s", err, w.Body)
	}
	if len(f.Entries) != 2 || f.Entries[0].Title != "[error] "+xssTitle || f.Entries[1].Content != "sda is at 97%" {
		t.Fatalf("atom entries %+v", f.Entries)
	}
	w = get(t, h, "/feed.json", authed)
	var jf struct {
		Version string `json:"version"`
		Items   []struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"items"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &jf); err != nil {
		t.Fatalf("json feed: %v", err)
	}
	if !strings.Contains(jf.Version, "jsonfeed.org/version/1.1") || len(jf.Items) != 2 || jf.Items[0].ID != "ev2" {
		t.Fatalf("json feed %+v", jf)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/feed+json") {
		t.Fatalf("content type %s", ct)
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateToken(dir)
	if err != nil || a != b || len(a) != 64 {
		t.Fatalf("tokens %q %q %v", a, b, err)
	}
}

// TestTokenOwnedLikeStateDir: root making the token (herald web before
// the daemon ever ran) leaves it to the state directory's owner.
func TestTokenOwnedLikeStateDir(t *testing.T) {
	testkit.Root(t, "it checks the token's owner")
	dir := t.TempDir()
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token owned by %d:%d mode %v", st.Uid, st.Gid, fi.Mode())
	}
}

func TestLongListsCapped(t *testing.T) {
	q := &fakeQueue{}
	for i := range maxRows + 5 {
		q.ds = append(q.ds, delivery.Delivery{ID: fmt.Sprintf("e%d.t", i), EventID: fmt.Sprintf("e%d", i), Target: "t", State: delivery.StateDead})
	}
	body := get(t, testHandler(q, nil), "/", authed).Body.String()
	if n := strings.Count(body, `/retry"`); n != maxRows {
		t.Fatalf("%d retry forms, want %d", n, maxRows)
	}
	if !strings.Contains(body, "… and 5 more") || !strings.Contains(body, fmt.Sprintf("%d dead letters", maxRows+5)) {
		t.Fatal("the page does not say how many it left out")
	}
}
