package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"herald/internal/event"
)

// Who sent it: every event carries origin, and uid/user where the kernel
// tells them (the maildrop file's owner, the owner of a local client's
// socket). A submitter's own fields of those names are overwritten, so a
// forged event can be told apart. herald notify as an unprivileged user
// works although the private notifications file (mode 600) exists.
func TestOriginFields(t *testing.T) {
	setpriv := needTool(t, "setpriv")
	swaks := needTool(t, "swaks")
	if os.Geteuid() != 0 {
		t.Fatal("this test switches to the user nobody and must run as root (CI does)")
	}
	d := newDaemon(t, "")
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), "", 0o600)
	d.start()
	for _, p := range []string{bins.dir, filepath.Dir(d.configDir), filepath.Dir(filepath.Dir(d.configDir)), d.configDir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(d.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	asNobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}

	// herald notify as nobody goes through the HTTP API; its forged fields
	// do not survive.
	out, code := d.runCode("", nil, setpriv, append(asNobody, d.herald, "notify", "--severity", "error", "--type", "vzdump",
		"--field", "uid=0", "--field", "user=root", "--field", "origin=sendmail", "--title", "forged by nobody")...)
	if code != 0 {
		t.Fatalf("herald notify as nobody with the private file present: exit %d\n%s", code, out)
	}
	checkFields(t, d.waitEvent("forged by nobody"), map[string]string{"origin": "http", "uid": "65534", "user": "nobody"})

	// SMTP from nobody's swaks over loopback.
	out, code = d.runCode("", nil, setpriv, append(asNobody, swaks, "--server", fmt.Sprintf("127.0.0.1:%d", d.port),
		"--to", "root@localhost", "--header", "Subject: smtp from nobody")...)
	if code != 0 {
		t.Fatalf("swaks as nobody: exit %d\n%s", code, out)
	}
	checkFields(t, d.waitEvent("smtp from nobody"), map[string]string{"origin": "smtp", "uid": "65534", "user": "nobody"})

	// root through the maildrop: the shim and herald notify.
	d.run("Subject: shim from root\n\nx\n", d.shim, "root")
	checkFields(t, d.waitEvent("shim from root"), map[string]string{"origin": "sendmail", "uid": "0", "user": "root"})
	d.run("", d.herald, "notify", "--severity", "info", "--type", "t", "--field", "uid=1000", "--field", "origin=smtp", "--title", "notify from root")
	checkFields(t, d.waitEvent("notify from root"), map[string]string{"origin": "notify", "uid": "0", "user": "root"})
}

func checkFields(t *testing.T, ev event.Event, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if ev.Fields[k] != v {
			t.Errorf("%q: field %s = %q, want %q (all: %v)", ev.Title, k, ev.Fields[k], v, ev.Fields)
		}
	}
}
