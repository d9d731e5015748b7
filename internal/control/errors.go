package control

import (
	"encoding/json"
	"errors"
	"net/http"

	"herald/internal/delivery"
	"herald/internal/monitor"
)

// Code says what kind of error the daemon answered, so that the client can
// give back one errors.Is recognises.
type Code string

// The codes and the sentinel each stands for; "" is any other error.
const (
	CodeNotFound       Code = "not-found"       // delivery.ErrNotFound
	CodeInFlight       Code = "in-flight"       // delivery.ErrInFlight
	CodeDelivered      Code = "delivered"       // delivery.ErrDelivered
	CodeUnknownMonitor Code = "unknown-monitor" // monitor.ErrUnknown
)

var codes = []struct {
	code   Code
	err    error
	status int
}{
	{CodeNotFound, delivery.ErrNotFound, http.StatusNotFound},
	{CodeInFlight, delivery.ErrInFlight, http.StatusConflict},
	{CodeDelivered, delivery.ErrDelivered, http.StatusConflict},
	{CodeUnknownMonitor, monitor.ErrUnknown, http.StatusNotFound},
}

// codeOf returns the code of err and the HTTP status it is answered with.
func codeOf(err error) (Code, int) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code, c.status
		}
	}
	return "", http.StatusInternalServerError
}

// Error is an error the daemon answered: its text as the daemon wrote it,
// and its code.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Is matches the sentinel the code stands for.
func (e *Error) Is(target error) bool {
	for _, c := range codes {
		if c.code == e.Code {
			return target == c.err
		}
	}
	return false
}

// wireError is an error's JSON body.
type wireError struct {
	Error string `json:"error"`
	Code  Code   `json:"code,omitempty"`
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code, status := codeOf(err)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(wireError{Error: err.Error(), Code: code})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
