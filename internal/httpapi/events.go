package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"herald/internal/event"
	"herald/internal/spool"
)

// handleEvents is POST /api/v1/events.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	if r.ContentLength > MaxEventSize {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("event too large: at most %d bytes", MaxEventSize))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("event too large: at most %d bytes", MaxEventSize))
			return
		}
		s.log.Info("http event: cannot read request body", "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, "cannot read request body")
		return
	}
	ev, err := event.Decode(body)
	if err != nil {
		s.log.Info("http event rejected", "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, ok := s.submit(w, r, ev, writeError)
	if !ok {
		return
	}
	s.log.Info("http event accepted", "spool_id", id, "remote", r.RemoteAddr,
		"type", ev.Type(), "severity", ev.Severity.String())
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id})
}

// submit fills in what the submitter may leave out, writes ev into the
// spool as an event entry exactly as `herald notify` does, and counts it.
// On failure it answers through fail and returns false.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, ev *event.Event,
	fail func(http.ResponseWriter, int, string)) (string, bool) {
	now := s.opt.Now()
	event.Normalize(ev, s.opt.Hostname, now)
	// The daemon gives the event its spool ID; an ID sent by the client is
	// not kept (parseEvent dropped it).
	ev.ID = ""
	line, err := event.JSONLine(ev)
	if err != nil {
		s.log.Error("http event: cannot encode", "remote", r.RemoteAddr, "err", err)
		fail(w, http.StatusInternalServerError, "internal error: the event was not accepted")
		return "", false
	}
	source := "http"
	if isPushPath(r.URL.Path) {
		source = "push"
	}
	env := spool.Envelope{Kind: spool.KindEvent, Source: source, Received: now.UTC(), Remote: r.RemoteAddr, PeerUID: clientUID(r)}
	id, err := s.sub.Submit(env, bytes.NewReader(line), int64(len(line)))
	if err != nil {
		code, msg := submitStatus(err)
		s.log.Error("http event not accepted: spool write failed", "remote", r.RemoteAddr,
			"type", ev.Type(), "status", code, "err", err)
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfter)
		}
		fail(w, code, msg)
		return "", false
	}
	s.opt.Metrics.Accepted("http")
	return id, true
}
