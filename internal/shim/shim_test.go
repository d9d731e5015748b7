package shim

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"herald/internal/spool"
	"herald/internal/testkit"
)

// goTool finds the go command that runs these tests (go test puts its
// GOROOT/bin first in PATH).
func goTool(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("cannot find the go command to build the shim: %v", err)
	}
	return p
}

// buildShim builds cmd/herald-sendmail as the release does (static,
// trimmed) into dir/name; defaultState, if set, is linked in as
// DefaultStateDir.
func buildShim(tb testing.TB, dir, name, defaultState string) string {
	tb.Helper()
	out := filepath.Join(dir, name)
	ldflags := "-s -w"
	if defaultState != "" {
		ldflags += " -X herald/internal/shim.DefaultStateDir=" + defaultState
	}
	cmd := exec.Command(goTool(tb), "build", "-trimpath", "-ldflags", ldflags, "-o", out, "herald/cmd/herald-sendmail")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build herald-sendmail: %v\n%s", err, b)
	}
	return out
}

// shimEnv is a minimal environment for running the shim binary.
func shimEnv(state string) []string {
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if state != "" {
		env = append(env, "HERALD_STATE_DIR="+state)
	}
	return env
}

func runBin(t *testing.T, env []string, stdin string, name string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q did not finish within 30s", name, args)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestShimBinary runs the real binary under each of its names.
func TestShimBinary(t *testing.T) {
	dir := t.TempDir()
	bin := buildShim(t, dir, "herald-sendmail", "")
	for _, n := range []string{"sendmail", "mailq", "newaliases"} {
		if err := os.Symlink(bin, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	s, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := shimEnv(state)

	if code, out, _ := runBin(t, env, "", filepath.Join(dir, "mailq")); code != 0 || out != "Mail queue is empty\n" {
		t.Fatalf("mailq: %d %q", code, out)
	}
	code, _, errs := runBin(t, env, "To: a@x\nSubject: hi\n\nbody\n.\nlost\n", filepath.Join(dir, "sendmail"), "-t")
	if code != 0 {
		t.Fatalf("sendmail -t: exit %d: %s", code, errs)
	}
	code, _, errs = runBin(t, env, "Subject: two\n\nbody\n.\nkept\n", bin, "-oi", "-f", "me@x", "--", "b@y,c@z")
	if code != 0 {
		t.Fatalf("herald-sendmail: exit %d: %s", code, errs)
	}
	if code, _, errs := runBin(t, env, "", filepath.Join(dir, "newaliases")); code != 0 || errs != "" {
		t.Fatalf("newaliases: %d %s", code, errs)
	}
	code, out, _ := runBin(t, env, "", filepath.Join(dir, "mailq"))
	if code != 0 || !strings.Contains(out, "in 2 Requests") || !strings.Contains(out, "c@z") {
		t.Fatalf("mailq: %d\n%s", code, out)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 2 {
		t.Fatalf("Pending = %v, %v", es, err)
	}
	b, _ := s.ReadAll(es[1])
	if !strings.HasSuffix(string(b), "\n\nbody\n.\nkept\n") || es[1].Env.From != "me@x" {
		t.Errorf("second message %q from %q", b, es[1].Env.From)
	}
	if code, _, errs := runBin(t, env, "", bin, "-z"); code != 64 || !strings.HasPrefix(errs, "sendmail: invalid option -- 'z'") {
		t.Errorf("unknown option: %d %q", code, errs)
	}
	if code, _, errs := runBin(t, shimEnv(filepath.Join(state, "nope")), "Subject: x\n\n", bin, "r"); code != 75 || !strings.Contains(errs, "cannot queue message") {
		t.Errorf("missing state dir: %d %q", code, errs)
	}
	// -bs speaks SMTP on stdin/stdout (cmd/herald-sendmail wires it to
	// smtpd.ServeStdio) and submits into the maildrop like any shim call.
	dialogue := "EHLO php\r\nMAIL FROM:<app@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n"
	if code, out, errs := runBin(t, env, dialogue, bin, "-bs"); code != 0 || !strings.Contains(out, "220 ") ||
		!strings.Contains(out, "250 2.0.0") || !strings.Contains(out, "221 ") {
		t.Errorf("-bs: %d %q %q", code, out, errs)
	}
	if es, _ := s.Pending(); len(es) != 3 || es[2].Env.From != "app@x" || es[2].Env.Source != "sendmail" {
		t.Errorf("-bs did not submit into the maildrop: %+v", es)
	}
}

// TestMailxThroughShim has the real bsd-mailx submit through the shim, with
// its own argv (-i -t) and headers (Bcc that must go).
func TestMailxThroughShim(t *testing.T) {
	mailx := testkit.Tool(t, "bsd-mailx", "bsd-mailx")
	dir := t.TempDir()
	bin := buildShim(t, dir, "sendmail", "")
	rc := filepath.Join(dir, "mailrc")
	if err := os.WriteFile(rc, []byte("set sendmail="+bin+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	s, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := append(shimEnv(state), "MAILRC="+rc, "HOME="+dir)
	code, out, errs := runBin(t, env, "SMART error on /dev/sda\n.\nstill body\n", mailx, "-s", "SMART error (EmailTest) detected on host: vm", "-c", "cc@y", "-b", "hidden@z", "root")
	if code != 0 {
		t.Fatalf("bsd-mailx: exit %d\n%s%s", code, out, errs)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 1 {
		t.Fatalf("Pending = %v, %v", es, err)
	}
	got := append([]string(nil), es[0].Env.Recipients...)
	sort.Strings(got)
	if strings.Join(got, " ") != "cc@y hidden@z root" {
		t.Errorf("recipients %q", es[0].Env.Recipients)
	}
	b, _ := s.ReadAll(es[0])
	msg := string(b)
	if strings.Contains(msg, "hidden@z") || !strings.Contains(msg, "Subject: SMART error (EmailTest) detected on host: vm\n") ||
		!strings.Contains(msg, "\n.\nstill body\n") || !strings.Contains(msg, "\nMessage-ID: <") || !strings.Contains(msg, "\nFrom: ") {
		t.Errorf("stored message:\n%s", msg)
	}
}

// TestUnprivilegedSubmit proves the permission model with a real setgid
// shim and a real unprivileged user: the user can submit, the recorded uid
// is the user's, and the user can neither list nor read the maildrop.
func TestUnprivilegedSubmit(t *testing.T) {
	testkit.Root(t, "it creates a throwaway user and group and runs the setgid shim as that user")
	for _, tool := range []string{"setpriv", "useradd", "groupadd", "userdel", "groupdel"} {
		testkit.Tool(t, tool, "util-linux, passwd")
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := "herald-t-" + hex.EncodeToString(rnd[:])
	dropGroup, userGroup, userName := base+"d", base+"u", base
	admin := func(args ...string) {
		t.Helper()
		var last []byte
		// /etc/passwd may be locked by a concurrent useradd: retry briefly.
		for i := 0; i < 20; i++ {
			b, err := exec.Command(args[0], args[1:]...).CombinedOutput()
			if err == nil {
				return
			}
			last = append([]byte(err.Error()+": "), b...)
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%q: %s", args, last)
	}
	cleanup := func(args ...string) {
		t.Cleanup(func() {
			if b, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Errorf("cleanup %q: %v %s", args, err, b)
			}
		})
	}
	admin("groupadd", dropGroup)
	cleanup("groupdel", dropGroup)
	admin("groupadd", userGroup)
	cleanup("groupdel", userGroup)
	admin("useradd", "-M", "-N", "-g", userGroup, "-d", "/nonexistent", "-s", "/usr/sbin/nologin", userName)
	// Registered last, runs first: the user goes before its group.
	cleanup("userdel", userName)
	u, err := user.Lookup(userName)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(dropGroup)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	dropGID, _ := strconv.Atoi(g.Gid)

	// Directories the user must be able to traverse (t.TempDir is 0700).
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(root, "state")
	maildrop := filepath.Join(state, "spool", "maildrop")
	if err := os.MkdirAll(maildrop, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(maildrop, 0, dropGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(maildrop, os.ModeSticky|0o730); err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(root, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The state directory is compiled in, as a package build would do:
	// HERALD_STATE_DIR would make the shim give up its group.
	bin := buildShim(t, binDir, "sendmail", state)
	if err := os.Chown(bin, 0, dropGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, os.ModeSetgid|0o755); err != nil {
		t.Fatal(err)
	}

	asUser := func(stdin string, env []string, args ...string) (int, string, string) {
		t.Helper()
		full := append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups"}, args...)
		return runBin(t, env, stdin, "setpriv", full...)
	}
	env := shimEnv("")

	code, _, errs := asUser("To: root\nSubject: from a user\n\nhello\n", env, bin, "-i", "-t")
	if code != 0 {
		t.Fatalf("setgid shim as uid %d: exit %d: %s", uid, code, errs)
	}

	s, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 1 {
		t.Fatalf("Pending = %v, %v", es, err)
	}
	if es[0].Env.UID != uid {
		t.Fatalf("recorded uid %d, want the submitter's %d", es[0].Env.UID, uid)
	}
	if want := userName + "@" + hostname(); es[0].Env.From != want {
		t.Errorf("envelope sender %q, want %q", es[0].Env.From, want)
	}
	entry := filepath.Join(maildrop, es[0].ID)

	if code, out, _ := asUser("", env, "ls", maildrop); code == 0 {
		t.Errorf("the user can list the maildrop:\n%s", out)
	}
	if code, out, _ := asUser("", env, "cat", entry); code == 0 {
		t.Errorf("the user can read a queued entry:\n%s", out)
	}
	if code, _, _ := asUser("", env, "rm", "-f", entry); code == 0 {
		if _, err := os.Stat(entry); err != nil {
			t.Errorf("the user removed a queued entry")
		}
	}
	// Through the shim's own group neither: mailq refuses.
	if code, out, errs := asUser("", env, bin, "-bp"); code != 77 || !strings.Contains(errs, "permission denied") {
		t.Errorf("mailq as the user: exit %d\n%s%s", code, out, errs)
	}
	// A caller-chosen state directory makes the shim drop its group, so it
	// cannot write into the real maildrop any more.
	code, _, errs = asUser("Subject: x\n\n", shimEnv(state), bin, "root")
	if code != 75 {
		t.Errorf("with HERALD_STATE_DIR the shim kept its group: exit %d: %s", code, errs)
	}
	if es, _ := s.Pending(); len(es) != 1 {
		t.Errorf("%d entries after the refused submission, want 1", len(es))
	}
}

// BenchmarkShimInvocation measures one whole sendmail invocation (fork,
// exec, read a 2 KB message, durable write into the spool) as cron would
// make it, against /bin/true in the same run. Reports the medians.
func BenchmarkShimInvocation(b *testing.B) {
	dir := b.TempDir()
	bin := buildShim(b, dir, "sendmail", "")
	state := b.TempDir()
	if _, err := spool.Open(state, nil); err != nil {
		b.Fatal(err)
	}
	var msg strings.Builder
	msg.WriteString("From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@vm> backup\n\n")
	for msg.Len() < 2048 {
		msg.WriteString("backup: copied 1234 files, 56 MB, no errors reported by the tool\n")
	}
	body := msg.String()
	env := shimEnv(state)
	runs := max(b.N, 200)
	timeOne := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(body)
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return time.Since(start)
	}
	var shim, truth []time.Duration
	b.ResetTimer()
	for i := 0; i < runs; i++ {
		// Interleaved, so both see the same machine load.
		shim = append(shim, timeOne(bin, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"))
		truth = append(truth, timeOne("/bin/true"))
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(median(shim), "ms/invocation-median")
	b.ReportMetric(median(truth), "ms/true-median")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d runs: shim median %.2f ms, /bin/true median %.2f ms", runs, median(shim), median(truth))
}
