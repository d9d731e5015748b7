// Package web is herald's status page on the loopback HTTP listener: the
// recent events with filters, each event's body and deliveries, monitors
// (when there are any), the delivery queue and its dead letters with retry
// and drop buttons, what noise control holds or counts, and Atom and JSON
// feeds of the recent events.
//
// Any local user can reach loopback and events carry root's mail, so every
// request needs the access token (`herald web` prints the URL with it):
// as ?token= (which also sets a cookie for the links of the page), the
// cookie, or an Authorization: Bearer header. Without it the answer is 401.
// Actions are POSTs carrying a CSRF token derived from the access token;
// the listener's cross-origin check applies as well. Pages are rendered
// with html/template (contextual escaping: an event's HTML is shown as
// text) and no script runs on them (Content-Security-Policy).
package web

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/history"
	"herald/internal/noise"
)

// Queue is what the page shows of the delivery queue and acts on;
// *delivery.Queue has it.
type Queue interface {
	List() ([]delivery.Delivery, error)
	Retry(id string) error
	Drop(id string) error
}

// Monitor is one heartbeat monitor as the page shows it.
type Monitor struct {
	Name   string
	State  string // e.g. "up", "down", "pending"
	Last   time.Time
	Detail string
}

// Monitors lists the monitors; the daemon wires it when it has monitors.
type Monitors interface {
	Monitors() []Monitor
}

// Options configure the page. History and Queue are required.
type Options struct {
	Token    string
	Hostname string
	History  func(history.Filter) ([]history.Entry, error)
	Queue    Queue
	// Held lists what noise control holds (nil: nothing shown).
	Held func() []noise.Item
	// Monitors, when set, adds the monitors section.
	Monitors Monitors
	Logger   *slog.Logger
	Now      func() time.Time
}

// cookieName holds the access token after a visit with ?token=.
const cookieName = "herald_token"

// recent is how many events the page and the feeds show; maxRows bounds
// the queue and held lists (the page says how many it left out).
const (
	recent  = 100
	maxRows = 200
)

//go:embed templates/*.html
var templateFS embed.FS

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
	"join": strings.Join,
	"add":  func(a, b int) int { return a + b },
}

var pages = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))

// Handler serves the status page.
type Handler struct {
	opt  Options
	log  *slog.Logger
	csrf string
	mux  *http.ServeMux
}

// New returns the page's handler.
func New(opt Options) *Handler {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	m := hmac.New(sha256.New, []byte(opt.Token))
	m.Write([]byte("herald status page csrf"))
	h := &Handler{opt: opt, log: opt.Logger, csrf: hex.EncodeToString(m.Sum(nil)), mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /event/{id}", h.event)
	h.mux.HandleFunc("POST /queue/{id}/{action}", h.action)
	h.mux.HandleFunc("GET /feed.atom", h.atom)
	h.mux.HandleFunc("GET /feed.json", h.jsonFeed)
	return h
}

// ServeHTTP checks the token, then serves the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	// The token may sit in the URL: never send it on as a Referer.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if h.opt.Token == "" || !h.authorised(w, r) {
		hd.Set("WWW-Authenticate", `Bearer realm="herald"`)
		http.Error(w, "401 unauthorized: open the URL that `herald web` prints (it carries the access token)", http.StatusUnauthorized)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) authorised(w http.ResponseWriter, r *http.Request) bool {
	if t := r.URL.Query().Get("token"); t != "" {
		if !h.tokenOK(t) {
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: t, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode})
		return true
	}
	if c, err := r.Cookie(cookieName); err == nil && h.tokenOK(c.Value) {
		return true
	}
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && h.tokenOK(a) {
		return true
	}
	return false
}

func (h *Handler) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(h.opt.Token)) == 1
}

// filters are the page's query parameters.
type filters struct {
	Q, Type, Severity, Since string
}

func (f filters) Any() bool { return f.Q != "" || f.Type != "" || f.Severity != "" || f.Since != "" }

// historyFilter turns the page's filters into a history filter.
func (h *Handler) historyFilter(f filters) (history.Filter, error) {
	hf := history.Filter{Type: f.Type, Severity: f.Severity, Limit: recent}
	if f.Since != "" {
		d, err := time.ParseDuration(f.Since)
		if err != nil || d <= 0 {
			return hf, errors.New("since: want a duration such as 30m, 12h or 72h")
		}
		hf.Since = h.opt.Now().Add(-d)
	}
	if f.Q != "" {
		re, err := regexp.Compile("(?i)" + f.Q)
		if err != nil {
			return hf, errors.New("search: invalid regular expression")
		}
		hf.Grep = re.MatchString
	}
	return hf, nil
}

type indexData struct {
	Hostname   string
	Now        time.Time
	Filters    filters
	FilterErr  string
	Events     []history.Entry
	Pending    []delivery.Delivery
	Dead       []delivery.Delivery
	Held       []noise.Item
	HasHeld    bool
	Monitors   []Monitor
	ShowMon    bool
	CSRF       string
	Severities []string
	// SinceOptions are the time filters offered.
	SinceOptions []string
	Flash        string
	QueueErr     string
	// More counts what the lists left out past maxRows.
	MoreDead, MorePending, MoreHeld int
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := indexData{Hostname: h.opt.Hostname, Now: h.opt.Now(), CSRF: h.csrf, Flash: q.Get("done"),
		SinceOptions: []string{"1h", "12h", "24h", "168h"},
		Filters:      filters{Q: q.Get("q"), Type: q.Get("type"), Severity: q.Get("severity"), Since: q.Get("since")}}
	for _, s := range event.Severities() {
		d.Severities = append(d.Severities, s.String())
	}
	hf, err := h.historyFilter(d.Filters)
	if err != nil {
		d.FilterErr = err.Error()
	} else if evs, err := h.opt.History(hf); err != nil {
		h.log.Error("status page: reading the history", "err", err)
		d.FilterErr = "the history cannot be read; see the log"
	} else {
		slices.Reverse(evs) // newest first
		d.Events = evs
	}
	if ds, err := h.opt.Queue.List(); err != nil {
		d.QueueErr = "the queue cannot be listed; see the log"
		h.log.Error("status page: listing the queue", "err", err)
	} else {
		for _, x := range ds {
			switch x.State {
			case delivery.StateDead:
				d.Dead = append(d.Dead, x)
			case delivery.StatePending, delivery.StateInflight:
				d.Pending = append(d.Pending, x)
			}
		}
	}
	if h.opt.Held != nil {
		d.Held = h.opt.Held()
		d.HasHeld = true
	}
	d.Dead, d.MoreDead = capRows(d.Dead)
	d.Pending, d.MorePending = capRows(d.Pending)
	d.Held, d.MoreHeld = capRows(d.Held)
	if h.opt.Monitors != nil {
		d.Monitors = h.opt.Monitors.Monitors()
		d.ShowMon = true
	}
	h.render(w, "index.html", d)
}

type eventData struct {
	Hostname string
	Entry    history.Entry
	Queue    []delivery.Delivery
	Fields   [][2]string
	CSRF     string
}

func (h *Handler) event(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	evs, err := h.opt.History(history.Filter{EventID: id})
	if err != nil {
		h.log.Error("status page: reading the history", "err", err)
		http.Error(w, "the history cannot be read", http.StatusInternalServerError)
		return
	}
	if len(evs) == 0 {
		http.Error(w, "no such event in the history", http.StatusNotFound)
		return
	}
	d := eventData{Hostname: h.opt.Hostname, Entry: evs[0], CSRF: h.csrf}
	for k, v := range evs[0].Event.Fields {
		d.Fields = append(d.Fields, [2]string{k, v})
	}
	slices.SortFunc(d.Fields, func(a, b [2]string) int { return cmp.Compare(a[0], b[0]) })
	if ds, err := h.opt.Queue.List(); err == nil {
		for _, x := range ds {
			if x.EventID == id {
				d.Queue = append(d.Queue, x)
			}
		}
	}
	h.render(w, "event.html", d)
}

// action runs a retry or drop; the CSRF token must come with the form.
func (h *Handler) action(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(h.csrf)) != 1 {
		h.log.Warn("status page: action refused: missing or wrong CSRF token", "remote", r.RemoteAddr)
		http.Error(w, "403 forbidden: missing or wrong CSRF token", http.StatusForbidden)
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	var err error
	switch action {
	case "retry":
		err = h.opt.Queue.Retry(id)
	case "drop":
		err = h.opt.Queue.Drop(id)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		code := http.StatusConflict
		if errors.Is(err, delivery.ErrNotFound) {
			code = http.StatusNotFound
		}
		http.Error(w, action+": "+err.Error(), code)
		return
	}
	h.log.Info("status page: delivery "+action, "delivery_id", id, "remote", r.RemoteAddr)
	back := "/?done=" + url.QueryEscape(action+" "+id)
	if ref := r.PostForm.Get("back"); strings.HasPrefix(ref, "/event/") && !strings.ContainsAny(ref, "?#\\") {
		back = ref
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// capRows keeps the first maxRows of a list and says how many it left out.
func capRows[T any](xs []T) ([]T, int) {
	if len(xs) <= maxRows {
		return xs, 0
	}
	return xs[:maxRows], len(xs) - maxRows
}

func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error("status page: template", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
