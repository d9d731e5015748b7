package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// appendConfig adds lines to the daemon's herald.cfg before it starts.
func (d *daemon) appendConfig(lines string) {
	d.t.Helper()
	p := filepath.Join(d.configDir, "herald.cfg")
	cfg, err := os.ReadFile(p)
	if err != nil {
		d.t.Fatal(err)
	}
	writeFile(d.t, p, string(cfg)+lines, 0o644)
}

// healthz returns the status of GET /healthz.
func (d *daemon) healthz() (int, string) {
	d.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", d.httpPort))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A flood of idle connections is capped: the ones beyond the cap get 421,
// /healthz and the HTTP API keep answering, and once the idle sessions run
// out of session time a real client (swaks) gets through. A client that
// trickles DATA a byte at a time is cut off by the session time although it
// never falls silent, and its message is not accepted.
func TestIdleFloodAndSlowClient(t *testing.T) {
	swaks := needTool(t, "swaks")
	d := newDaemon(t, "")
	d.appendConfig("smtp-max-sessions 40\nsmtp-max-sessions-per-client 30\nsmtp-session-time 3s\n")
	d.start()
	addr := fmt.Sprintf("127.0.0.1:%d", d.port)

	var socks []net.Conn
	defer func() {
		for _, c := range socks {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial during the flood: %v", err)
		}
		socks = append(socks, c)
	}
	greeted, refused := 0, 0
	for _, c := range socks {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		switch {
		case strings.HasPrefix(line, "220 "):
			greeted++
		case strings.HasPrefix(line, "421 4.7.0"), err != nil:
			refused++
		}
	}
	if greeted != 30 || refused != 270 {
		t.Fatalf("of 300 idle connections %d were greeted and %d refused, want 30 and 270", greeted, refused)
	}
	if code, body := d.healthz(); code != http.StatusOK {
		t.Fatalf("/healthz during the flood: %d %s", code, body)
	}
	if !strings.Contains(d.log(), "smtp connections refused") {
		t.Errorf("the refusals are not logged:\n%s", d.log())
	}
	// The idle sessions are cut at their session time; then mail flows.
	waitFor(t, "swaks to get through after the idle sessions' time ran out", 20*time.Second, func() bool {
		_, code := d.runCode("", nil, swaks, "--server", addr, "--to", "root@localhost", "--header", "Subject: after the flood")
		return code == 0
	})
	d.waitEvent("after the flood")

	// Slowloris: DATA at one byte every 200 ms.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, cmd := range []string{"", "EHLO slow\r\n", "MAIL FROM:<a@b>\r\n", "RCPT TO:<root@localhost>\r\n", "DATA\r\n"} {
		if cmd != "" {
			fmt.Fprint(c, cmd)
		}
		for {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", cmd, err)
			}
			if line[3] == ' ' {
				break
			}
		}
	}
	fmt.Fprint(c, "Subject: slowloris\r\n\r\n")
	began := time.Now()
	cut := make(chan time.Duration, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.Copy(io.Discard, r) // until the daemon hangs up
		cut <- time.Since(began)
	}()
	for done := false; !done; {
		select {
		case d := <-cut:
			if d > 6*time.Second {
				t.Fatalf("the trickling client was cut after %v, want within the 3s session time", d)
			}
			done = true
		case <-time.After(200 * time.Millisecond):
			if _, err := c.Write([]byte("x")); err != nil {
				select {
				case <-cut:
				case <-time.After(5 * time.Second):
					t.Fatal("write failed but the connection did not end")
				}
				done = true
			}
		}
	}
	fmt.Fprint(c, "\r\n.\r\n")
	time.Sleep(500 * time.Millisecond)
	for _, ev := range d.events() {
		if ev.Title == "slowloris" {
			t.Fatal("the trickled message was accepted")
		}
	}
}

// DNS rebinding against the real daemon: a foreign Host is refused with
// 421 and nothing reaches the spool; a loopback Host works.
func TestRebindingHostRefused(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	post := func(host, title string) int {
		req, err := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/api/v1/events", d.httpPort),
			strings.NewReader(`{"severity":"error","title":"`+title+`","fields":{"type":"vzdump"}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(fmt.Sprintf("evil.example:%d", d.httpPort), "rebound"); code != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %d, want 421", code)
	}
	if code := post(fmt.Sprintf("localhost:%d", d.httpPort), "local"); code != http.StatusAccepted {
		t.Fatalf("localhost: %d, want 202", code)
	}
	d.waitEvent("local")
	for _, ev := range d.events() {
		if ev.Title == "rebound" {
			t.Fatal("the rebound request was accepted")
		}
	}
}
