package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHangingWebhookDelaysNoOtherWebhook: one webhook's server takes 5 s
// to answer each request; another webhook routed the same events gets
// each of them, and later ones, within a second or two, while the first
// is still hanging on its first request.
func TestHangingWebhookDelaysNoOtherWebhook(t *testing.T) {
	quit := make(chan struct{})
	var hangReqs, hangDone atomic.Int32
	hang := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangReqs.Add(1)
		select {
		case <-time.After(5 * time.Second):
			hangDone.Add(1)
		case <-quit:
		case <-r.Context().Done():
		}
	}))
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	fast := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		arrived[string(b)] = time.Now()
		mu.Unlock()
	}))
	cfg := fmt.Sprintf(`webhook: a-hang
	url http://%s/hook
	method post
	body e3sgdGl0bGUgfX0=

webhook: b-fast
	url http://%s/hook
	method post
	body e3sgdGl0bGUgfX0=

matcher: everything
	target a-hang
	target b-fast
`, hang, fast)
	d := newDaemon(t, cfg)
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), "webhook: a-hang\n\nwebhook: b-fast\n", 0o600)
	d.start()
	t.Cleanup(func() { close(quit) }) // runs before the daemon stops

	url := fmt.Sprintf("http://127.0.0.1:%d/api/v1/events", d.httpPort)
	start := time.Now()
	for wave := range 2 { // the first events, then later ones
		sent := map[string]time.Time{}
		for i := range 3 {
			title := fmt.Sprintf("wave%d-ev%d", wave, i)
			resp, err := http.Post(url, "application/json", strings.NewReader(
				fmt.Sprintf(`{"severity":"info","title":%q,"fields":{"type":"test"}}`, title)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST %s: %s", title, resp.Status)
			}
			sent[title] = time.Now()
		}
		for title, at := range sent {
			deadline := at.Add(2 * time.Second)
			for {
				mu.Lock()
				got, ok := arrived[title]
				mu.Unlock()
				if ok {
					t.Logf("%s reached the fast webhook %v after it was accepted", title, got.Sub(at).Round(time.Millisecond))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s did not reach the fast webhook within 2 s while the other hangs\n%s", title, d.log())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	if hangReqs.Load() == 0 {
		t.Fatal("the hanging webhook was never called")
	}
	if hangDone.Load() != 0 || time.Since(start) >= 5*time.Second {
		t.Fatalf("the test took %v: the hanging webhook was not hanging meanwhile", time.Since(start))
	}
	if n := hangReqs.Load(); n != 1 {
		t.Errorf("the hanging webhook got %d requests at once, want 1 (one call at a time per target)", n)
	}
}

// serveHTTP serves h on a loopback port until the test ends and returns
// its address.
func serveHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}
