package systemd

import (
	"bufio"
	"context"
	"herald/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitsDir is the repository's systemd/ directory, relative to this package.
var unitsDir = filepath.Join("..", "..", "systemd")

// maxExposure is herald's bar for systemd-analyze security.
const maxExposure = 2.0

// unitCopies copies the unit files to a temporary directory with ExecStart
// pointing at /bin/true, so that systemd-analyze finds an executable where
// /usr/bin/herald is not installed.
func unitCopies(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"herald.service", "herald.socket", "herald-http.socket"} {
		b, err := os.ReadFile(filepath.Join(unitsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if name == "herald.service" {
			if !strings.Contains(s, "\nExecStart=/usr/bin/herald serve\n") {
				t.Fatal("herald.service: ExecStart is not /usr/bin/herald serve")
			}
			s = strings.Replace(s, "\nExecStart=/usr/bin/herald serve\n", "\nExecStart=/bin/true serve\n", 1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	return testkit.Tool(t, "systemd-analyze", "systemd")
}

func runWithDeadline(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within 30s", name, args)
	}
	return string(out), err
}

var exposureRE = regexp.MustCompile(`Overall exposure level for herald\.service: ([0-9]+\.[0-9]+) (\S+)`)

// TestServiceSecurityExposure keeps the hardening of herald.service at an
// exposure of at most 2.0 on systemd-analyze's 0-10 scale (low in its "OK"
// band, which spans 1.0 to 4.9). --threshold=20
// (the same limit on its 0-100 scale) makes systemd-analyze itself fail
// above it; the figure is parsed as well so a failure says by how much.
func TestServiceSecurityExposure(t *testing.T) {
	tool := systemdAnalyze(t)
	dir := unitCopies(t)
	out, err := runWithDeadline(t, dir, tool, "security", "--offline=true", "--threshold=20", "--no-pager", "herald.service")
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Overall exposure level\" line in systemd-analyze security output (err %v):\n%s", err, out)
	}
	exposure, perr := strconv.ParseFloat(m[1], 64)
	if perr != nil {
		t.Fatal(perr)
	}
	t.Logf("herald.service exposure: %s %s", m[1], m[2])
	if exposure > maxExposure {
		t.Fatalf("herald.service exposure %.1f %s, want <= %.1f (OK); findings:\n%s", exposure, m[2], maxExposure, failedChecks(out))
	}
	if err != nil {
		t.Fatalf("systemd-analyze security --threshold=20 failed: %v\n%s", err, out)
	}
}

// failedChecks keeps the "✗" lines of systemd-analyze security output.
func failedChecks(out string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "✗") {
			b.WriteString(sc.Text() + "\n")
		}
	}
	return b.String()
}

// TestUnitsVerify runs systemd-analyze verify, which rejects unknown
// directives, bad values and missing executables.
func TestUnitsVerify(t *testing.T) {
	tool := systemdAnalyze(t)
	dir := unitCopies(t)
	out, err := runWithDeadline(t, dir, tool, "verify", "--man=no", "herald.service", "herald.socket", "herald-http.socket")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitContracts checks the settings other parts of herald rely on: the
// descriptor names Listeners' callers look up, and the notify protocol.
func TestUnitContracts(t *testing.T) {
	tests := []struct {
		unit string
		want []string
	}{
		{"herald.service", []string{
			"Type=notify", "NotifyAccess=main", "ExecStart=/usr/bin/herald serve",
			"ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30s", "RestartPreventExitStatus=78",
			"User=herald", "Group=herald", "Requires=herald.socket", "StateDirectory=herald",
			"ConfigurationDirectory=herald", "UMask=0027", "CapabilityBoundingSet=", "AmbientCapabilities=",
		}},
		{"herald.socket", []string{
			"ListenStream=127.0.0.1:25", "ListenStream=[::1]:25", "FileDescriptorName=smtp",
			"Service=herald.service", "BindIPv6Only=ipv6-only", "NoDelay=yes",
		}},
		{"herald-http.socket", []string{
			"ListenStream=127.0.0.1:8025", "FileDescriptorName=http", "Service=herald.service", "NoDelay=yes",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(unitsDir, tt.unit))
			if err != nil {
				t.Fatal(err)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(string(b), "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for _, w := range tt.want {
				if !lines[w] {
					t.Errorf("%s lacks the line %q", tt.unit, w)
				}
			}
		})
	}
}

// TestTmpfilesAgreesWithService: systemd sets the mode of /var/lib/herald
// from StateDirectoryMode= at every start and systemd-tmpfiles sets it from
// herald-tmpfiles.conf at boot; they must agree, and the maildrop must have
// the modes the spool's permission model requires.
func TestTmpfilesAgreesWithService(t *testing.T) {
	svc, err := os.ReadFile(filepath.Join(unitsDir, "herald.service"))
	if err != nil {
		t.Fatal(err)
	}
	stateMode := ""
	for _, l := range strings.Split(string(svc), "\n") {
		if v, ok := strings.CutPrefix(l, "StateDirectoryMode="); ok {
			stateMode = v
		}
	}
	tmp, err := os.ReadFile(filepath.Join(unitsDir, "herald-tmpfiles.conf"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // path -> "mode user group"
	for _, l := range strings.Split(string(tmp), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 6 || f[0] != "d" {
			t.Fatalf("herald-tmpfiles.conf: unexpected line %q", l)
		}
		got[f[1]] = strings.Join(f[2:5], " ")
	}
	want := map[string]string{
		"/var/lib/herald":                  stateMode + " herald herald",
		"/var/lib/herald/spool":            "0711 herald herald",
		"/var/lib/herald/spool/maildrop":   "1730 herald herald-drop",
		"/var/lib/herald/spool/incoming":   "0700 herald herald",
		"/var/lib/herald/spool/quarantine": "0700 herald herald",
	}
	if stateMode == "" {
		t.Fatal("herald.service has no StateDirectoryMode=")
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("herald-tmpfiles.conf %s = %q, want %q", p, got[p], w)
		}
	}
}

// TestServiceResourceBounds: the unit bounds memory, file descriptors and
// tasks, so that hostile input or a runaway exec target is contained (and a
// header bomb that got past every other bound ends in an OOM kill of herald
// alone, after which the spool entry is set aside, not a host in trouble).
func TestServiceResourceBounds(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(unitsDir, "herald.service"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := runWithDeadline(t, "", systemdAnalyze(t), "verify", "--man=no", filepath.Join(unitCopies(t), "herald.service"))
	if err != nil && strings.Contains(out, "Unknown key") {
		t.Fatalf("systemd-analyze verify: %s", out)
	}
	for _, key := range []string{"MemoryMax=", "MemoryHigh=", "LimitNOFILE=", "TasksMax="} {
		if !regexp.MustCompile(`(?m)^` + key + `[0-9]+[KMG]?$`).Match(b) {
			t.Errorf("herald.service has no numeric %s line", key)
		}
	}
}
