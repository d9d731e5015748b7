package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"herald/internal/event"
)

// PushType is the type field of the events the push endpoint makes.
const PushType = "push"

// Fields of a push event besides type and hostname.
const (
	FieldPushToken = "push-token" // PushTokenHash of the token
	FieldStatus    = "status"     // "up" or "down"
	FieldPing      = "ping"       // the ping parameter in milliseconds, when given
	FieldMonitor   = "monitor"    // the heartbeat the token belongs to
)

// unknownToken is Uptime Kuma's answer to a token no active monitor has.
const unknownToken = "Monitor not found or not active."

// pushPrefix is the path of the push endpoint without its token.
const pushPrefix = "/api/push/"

// maxTokenLen bounds a push token; Kuma's are 32 characters.
const maxTokenLen = 256

// maxPing is the largest ping Uptime Kuma accepts, in milliseconds (24 h):
// anything larger is most likely seconds sent as milliseconds.
const maxPing = 86_400_000

// PushTokenHash returns what herald records and logs instead of a push
// token: the first 12 hex digits of its SHA-256. A token is a secret that
// travels in a URL, so it never appears in events, logs or metrics; a
// matcher or heartbeat selects one monitor's pushes with
// match-field exact:push-token=HASH, where HASH is
// `printf %s TOKEN | sha256sum | cut -c1-12`.
func PushTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

// handlePush is /api/push/TOKEN?status=up|down&msg=...&ping=..., answered
// like Uptime Kuma's push endpoint: 200 {"ok":true} on success, {"ok":false,
// "msg":...} otherwise, 404 with Kuma's message for a token that no active
// heartbeat has (nothing is spooled then). The event of a known token names
// its heartbeat in the monitor field. As in Kuma, the parameters come from
// the query string for POST too, a missing status means up and any status
// but "up" means down (a script that reports trouble in its own words is
// still heard).
func (s *Server) handlePush(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writePush(w, http.StatusMethodNotAllowed, "method not allowed: use GET or POST")
		return
	}
	token := r.PathValue("token")
	hash := PushTokenHash(token)
	if len(token) > maxTokenLen {
		s.log.Info("push rejected: token too long", "push_token", hash, "remote", r.RemoteAddr)
		writePush(w, http.StatusBadRequest, fmt.Sprintf("push token longer than %d bytes", maxTokenLen))
		return
	}
	q := r.URL.Query()
	status := "up"
	if st := q.Get("status"); st != "" && st != "up" {
		status = "down"
	}
	msg := q.Get("msg")
	ping, err := parsePing(q.Get("ping"))
	if err != nil {
		s.log.Info("push rejected", "push_token", hash, "remote", r.RemoteAddr, "err", err)
		writePush(w, http.StatusBadRequest, err.Error())
		return
	}

	name, known := "", false
	if s.opt.PushMonitor != nil {
		name, known = s.opt.PushMonitor(token)
	}
	if !known {
		s.log.Info("push rejected: unknown token", "push_token", hash, "remote", r.RemoteAddr)
		writePush(w, http.StatusNotFound, unknownToken)
		return
	}

	ev := pushEvent(hash, status, msg, ping)
	ev.Fields[FieldMonitor] = name
	id, ok := s.submit(w, r, ev, writePush)
	if !ok {
		return
	}
	s.log.Info("push accepted", "spool_id", id, "push_token", hash, "monitor", name, "status", status, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// pushEvent makes the event of one push. ping is "" when not given.
func pushEvent(hash, status, msg, ping string) *event.Event {
	sev := event.Info
	if status != "up" {
		sev = event.Error
	}
	title := msg
	if title == "" {
		title = "push " + hash + " " + status
	}
	var body strings.Builder
	fmt.Fprintf(&body, "Push monitor %s reported %s.\n", hash, status)
	if msg != "" {
		fmt.Fprintf(&body, "Message: %s\n", msg)
	}
	if ping != "" {
		fmt.Fprintf(&body, "Ping: %s ms\n", ping)
	}
	ev := &event.Event{Severity: sev, Title: title, Body: body.String(), Fields: map[string]string{
		event.FieldType: PushType,
		FieldPushToken:  hash,
		FieldStatus:     status,
	}}
	if ping != "" {
		ev.Fields[FieldPing] = ping
	}
	return ev
}

// parsePing validates Kuma's ping parameter (milliseconds, 0 to 24 h) and
// returns it in canonical form, or "" when it is absent.
func parsePing(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return "", nil
	}
	v, err := strconv.ParseFloat(p, 64)
	if err != nil || math.IsNaN(v) {
		return "", fmt.Errorf("invalid ping value %q: not a number", p)
	}
	if v < 0 {
		return "", fmt.Errorf("invalid ping value %q: cannot be negative", p)
	}
	if v > maxPing {
		return "", fmt.Errorf("ping value %q exceeds the maximum of %d ms (24 hours); was it sent in seconds?", p, maxPing)
	}
	return strconv.FormatFloat(v, 'f', -1, 64), nil
}

// writePush answers in Kuma's error shape {"ok":false,"msg":...}.
func writePush(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"ok": false, "msg": msg})
}

// isPushPath reports whether p is below the push endpoint.
func isPushPath(p string) bool { return strings.HasPrefix(p, pushPrefix) }

// redactPath returns p fit for a log line: a push token is replaced by its
// hash.
func redactPath(p string) string {
	if isPushPath(p) {
		return pushPrefix + "<" + PushTokenHash(p[len(pushPrefix):]) + ">"
	}
	return p
}
