package systemd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMailboxHelperUnitsVerify checks herald-mbox.socket and its per-
// connection service with systemd-analyze verify, and the settings the
// daemon relies on: the socket path internal/mailbox dials, reachable by the
// herald group only, and the helper's stdin/stdout on the connection.
func TestMailboxHelperUnitsVerify(t *testing.T) {
	tool := systemdAnalyze(t)
	dir := t.TempDir()
	for _, name := range []string{"herald-mbox.socket", "herald-mbox@.service"} {
		b, err := os.ReadFile(filepath.Join(unitsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if name == "herald-mbox@.service" {
			const exec = "\nExecStart=/usr/lib/herald/herald-mbox-create\n"
			if !strings.Contains(s, exec) {
				t.Fatal("herald-mbox@.service: ExecStart is not /usr/lib/herald/herald-mbox-create")
			}
			s = strings.Replace(s, exec, "\nExecStart=/bin/true\n", 1)
		}
		for _, want := range map[string][]string{
			"herald-mbox.socket":   {"ListenStream=/run/herald/mbox.sock", "SocketGroup=herald", "SocketMode=0660", "Accept=yes"},
			"herald-mbox@.service": {"StandardInput=socket", "StandardOutput=socket", "ReadWritePaths=/var/mail", "NoNewPrivileges=yes"},
		}[name] {
			if !strings.Contains(s, "\n"+want+"\n") {
				t.Errorf("%s lacks %s", name, want)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runWithDeadline(t, dir, tool, "verify", "--man=no", "herald-mbox.socket", "herald-mbox@1.service")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
