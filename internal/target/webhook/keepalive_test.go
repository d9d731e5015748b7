package webhook

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// One target reuses its connection from delivery to delivery, whatever the
// answer: a success's body and an error's are read (up to the snippet's
// bound) so that the next request needs no new TCP (or TLS) handshake.
func TestDeliveriesReuseTheConnection(t *testing.T) {
	var conns, reqs atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := reqs.Add(1)
		if n%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Repeat("busy ", 1000)))
			return
		}
		_, _ = w.Write([]byte(`{"ok":true,"padding":"` + strings.Repeat("x", 4000) + `"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tg, err := New(Options{Method: "post", URL: srv.URL + "/hook", Body: "{{ title }}"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := range n {
		err := tg.Deliver(context.Background(), testEvent())
		if (i+1)%3 == 0 && err == nil {
			t.Fatalf("delivery %d: no error for a 503", i)
		}
		if (i+1)%3 != 0 && err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if reqs.Load() != n {
		t.Fatalf("server got %d requests, want %d", reqs.Load(), n)
	}
	if c := conns.Load(); c != 1 {
		t.Errorf("%d deliveries opened %d connections, want 1 kept alive", n, c)
	}
}
