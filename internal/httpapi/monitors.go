package httpapi

import "net/http"

// handleMonitors is GET /api/v1/monitors: every monitor with its state,
// as `herald monitors --json` prints it.
func (s *Server) handleMonitors(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.opt.Monitors())
}
