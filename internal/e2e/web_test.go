package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/testkit"
)

// cdp drives a headless Chromium through --remote-debugging-pipe: the
// DevTools protocol as NUL-terminated JSON messages on fds 3 and 4.
type cdp struct {
	t    *testing.T
	cmd  *exec.Cmd
	w    *os.File
	msgs chan map[string]json.RawMessage
	id   int
}

// startChromium starts headless Chromium with a fresh profile.
func startChromium(t *testing.T) *cdp {
	t.Helper()
	bin := needTool(t, "chromium")
	toChrome, ourW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ourR, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fd 3: Chromium reads, fd 4: Chromium writes
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChrome.Close()
	fromChrome.Close()
	c := &cdp{t: t, cmd: cmd, w: ourW, msgs: make(chan map[string]json.RawMessage, 64)}
	go func() {
		r := bufio.NewReader(ourR)
		for {
			b, err := r.ReadBytes(0)
			if err != nil {
				close(c.msgs)
				return
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(b[:len(b)-1], &m) == nil {
				c.msgs <- m
			}
		}
	}()
	t.Cleanup(func() {
		_ = c.w.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		ourR.Close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})
	return c
}

// call sends one command and waits (with a deadline) for its answer.
func (c *cdp) call(session, method string, params any) json.RawMessage {
	c.t.Helper()
	c.id++
	msg := map[string]any{"id": c.id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	if _, err := c.w.Write(append(b, 0)); err != nil {
		c.t.Fatalf("cdp %s: %v", method, err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("cdp %s: chromium closed the pipe", method)
			}
			var id int
			if json.Unmarshal(m["id"], &id) != nil || id != c.id {
				continue // an event, or an old answer
			}
			if e, ok := m["error"]; ok {
				c.t.Fatalf("cdp %s: %s", method, e)
			}
			return m["result"]
		case <-deadline:
			c.t.Fatalf("cdp %s: no answer within 30 s", method)
		}
	}
}

// open makes a new tab on url and returns its session.
func (c *cdp) open(url string) string {
	c.t.Helper()
	var tg struct{ TargetID string }
	_ = json.Unmarshal(c.call("", "Target.createTarget", map[string]any{"url": url}), &tg)
	var at struct{ SessionID string }
	_ = json.Unmarshal(c.call("", "Target.attachToTarget", map[string]any{"targetId": tg.TargetID, "flatten": true}), &at)
	return at.SessionID
}

// eval evaluates a JavaScript expression in the tab (DevTools bypasses
// the page's Content-Security-Policy; the page itself runs no script).
func (c *cdp) eval(session, expr string) json.RawMessage {
	c.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails json.RawMessage
	}
	_ = json.Unmarshal(c.call(session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r)
	if r.ExceptionDetails != nil {
		c.t.Fatalf("evaluating %s: %s", expr, r.ExceptionDetails)
	}
	return r.Result.Value
}

// waitTrue polls a boolean expression until it holds.
func (c *cdp) waitTrue(session, what, expr string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for string(c.eval(session, expr)) != "true" {
		if time.Now().After(deadline) {
			c.t.Fatalf("waited 20 s for %s; page text:\n%s", what, c.eval(session, "document.body ? document.body.innerText : ''"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves a PNG of the tab at a phone's width.
func (c *cdp) screenshot(session, path string, width, height int) {
	c.t.Helper()
	c.call(session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
	var r struct{ Data string }
	_ = json.Unmarshal(c.call(session, "Page.captureScreenshot", map[string]any{"format": "png"}), &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) < 1000 {
		c.t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// artefactDir is where the page's screenshots are kept after the test:
// $HERALD_TEST_ARTIFACTS, or a directory under the system's temp dir that
// the test names in its log.
func artefactDir(t *testing.T) string {
	dir := os.Getenv("HERALD_TEST_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "herald-status-page-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The event whose title and body are markup: the page must show it as text.
const (
	xssTitle = `<script>document.title="pwned"</script><b>bold</b>`
	xssBody  = `<img src=x onerror="document.body.dataset.pwned=1"><script>document.body.dataset.pwned=2</script>`
)

// TestStatusPageInChromium opens the status page in real headless Chromium:
// refused without the token, shown with it; events with their deliveries
// and what dedup counted; the retry button of a dead letter (a form POST
// with the CSRF token) delivers it; an event whose title and body are
// HTML/JS shows as text. HERALD_UPDATE_SCREENSHOT=1 rewrites the README's
// docs/status-page.png.
func TestStatusPageInChromium(t *testing.T) {
	d := newDaemon(t, `file: events
	path %[1]s/events.jsonl

exec: flaky
	command test -e %[1]s/flaky-ok

matcher: default-matcher
	target events

matcher: backups
	match-field exact:type=vzdump
	target flaky

noise: disk-warnings
	match-field exact:type=smartd
	dedup-window 6h
`)
	d.start()
	post := func(sev, typ, title, body string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"severity": sev, "title": title, "body": body, "fields": map[string]string{"type": typ}})
		if code, out := httpDo(t, "POST", fmt.Sprintf("http://127.0.0.1:%d/api/v1/events", d.httpPort), string(b)); code != 202 {
			t.Fatalf("POST event: %d %s", code, out)
		}
	}
	for range 4 {
		post("warning", "smartd", "SMART error count increased on /dev/sda", "Device: /dev/sda [SAT], ATA error count increased from 12 to 13")
	}
	post("info", "apt", "12 package updates available", "apt: 12 updates, 3 of them security updates")
	post("error", "vzdump", "vzdump backup of VM 101 failed", "ERROR: Backup of VM 101 failed - no space left on device")
	backup := d.waitEvent("vzdump backup of VM 101 failed")
	waitDelivery(t, d, backup.ID, "flaky", "dead")

	url := strings.TrimSpace(d.run("", d.herald, "web"))
	if !strings.Contains(url, "?token=") || strings.Count(url, "\n") != 0 {
		t.Fatalf("herald web printed %q", url)
	}
	base, _, _ := strings.Cut(url, "?")
	if code, out := httpDo(t, "GET", base, ""); code != http.StatusUnauthorized || strings.Contains(out, "vzdump") {
		t.Fatalf("without the token: %d %s", code, out)
	}

	c := startChromium(t)
	art := artefactDir(t)
	// Without the token: 401, nothing of the events.
	s0 := c.open(base)
	c.waitTrue(s0, "the refusal", `document.readyState === "complete" && document.body.innerText.includes("401")`)
	if txt := string(c.eval(s0, "document.body.innerText")); strings.Contains(txt, "vzdump") {
		t.Fatalf("refused page shows an event: %s", txt)
	}

	s := c.open(url)
	c.waitTrue(s, "the page with the events", `document.readyState === "complete" && document.body.innerText.includes("vzdump backup of VM 101 failed")`)
	checks := map[string]string{
		"deliveries listed":            `document.body.innerText.includes("events: done") && document.body.innerText.includes("flaky: dead")`,
		"repeats counted":              `document.body.innerText.includes("events: count")`,
		"dead letter with its buttons": `!!document.querySelector('#queue form[action$="/retry"] button') && !!document.querySelector('#queue form[action$="/drop"] button')`,
		"dedup window listed":          `document.querySelector("#held").innerText.includes("3 repeats")`,
	}
	for what, expr := range checks {
		if string(c.eval(s, expr)) != "true" {
			t.Errorf("%s: %s is false; page text:\n%s", what, expr, c.eval(s, "document.body.innerText"))
		}
	}
	c.screenshot(s, filepath.Join(art, "status-page-phone.png"), 412, 915)
	if os.Getenv("HERALD_UPDATE_SCREENSHOT") != "" {
		// The README's picture of the page.
		c.screenshot(s, filepath.Join(moduleRoot(), "docs", "status-page.png"), 412, 860)
	}

	// Retry: the target works now; the button's form POST (with its CSRF
	// token) makes the dead letter due, and it is delivered.
	writeFile(t, filepath.Join(d.stateDir, "flaky-ok"), "", 0o644)
	c.eval(s, `document.querySelector('#queue form[action$="/retry"] button').click(); true`)
	c.waitTrue(s, "the retry's answer", `location.search.includes("done=") && document.readyState === "complete" && document.body.innerText.includes("Done: retry")`)
	waitDelivery(t, d, backup.ID, "flaky", "done")
	c.call(s, "Page.reload", map[string]any{})
	c.waitTrue(s, "the dead letter gone", `document.readyState === "complete" && document.body.innerText.includes("No dead letters") && document.body.innerText.includes("flaky: done")`)
	c.screenshot(s, filepath.Join(art, "status-page-desktop.png"), 1000, 760)

	// XSS: an event whose title and body are markup shows as text.
	post("error", "xss", xssTitle, xssBody)
	ev := d.waitEvent(xssTitle)
	c.call(s, "Page.reload", map[string]any{})
	c.waitTrue(s, "the markup event", `document.readyState === "complete" && document.body.innerText.includes("<b>bold</b>")`)
	checks = map[string]string{
		"title shown as text, no element made of it": `document.querySelectorAll("b").length === 0 && document.title !== "pwned"`,
		"no script on the page":                      `document.scripts.length === 0`,
		"no handler ran":                             `document.body.dataset.pwned === undefined`,
	}
	for what, expr := range checks {
		if string(c.eval(s, expr)) != "true" {
			t.Errorf("%s: %s is false; page text:\n%s", what, expr, c.eval(s, "document.body.innerText"))
		}
	}
	jsTitle, _ := json.Marshal(xssTitle)
	c.eval(s, fmt.Sprintf(`[...document.querySelectorAll('#events a[href^="/event/"]')].find(a => a.textContent === %s).click(); true`, jsTitle))
	c.waitTrue(s, "the event page", `location.pathname === "/event/`+ev.ID+`" && document.readyState === "complete" && !!document.querySelector("pre.body")`)
	if got := string(c.eval(s, `document.querySelector("pre.body").textContent`)); !strings.Contains(got, "onerror") {
		t.Fatalf("event body not shown as text: %s", got)
	}
	if string(c.eval(s, `document.querySelectorAll("img,script,b").length === 0 && document.body.dataset.pwned === undefined && document.title !== "pwned"`)) != "true" {
		t.Fatal("the event's title or body became markup")
	}
	c.waitTrue(s, "the event's deliveries", `document.querySelector("#deliveries").innerText.includes("events")`)
	c.screenshot(s, filepath.Join(art, "event-page-phone.png"), 412, 915)
	t.Logf("screenshots kept in %s", art)
}

// waitDelivery waits until the history shows the delivery in state.
func waitDelivery(t *testing.T, d *daemon, eventID, target, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := d.runCode("", nil, d.herald, "history", "--json")
		var hist []struct {
			Event      struct{ ID string } `json:"event"`
			Deliveries []struct {
				Target, State string
			} `json:"deliveries"`
		}
		err := json.Unmarshal([]byte(out), &hist)
		if code == 0 && err == nil {
			for _, h := range hist {
				for _, dl := range h.Deliveries {
					if h.Event.ID == eventID && dl.Target == target && dl.State == state {
						return
					}
				}
			}
		} else if err == nil {
			err = errors.New("exit status")
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s to %s not %s within 30 s (%v):\n%s\n%s", eventID, target, state, err, out, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
