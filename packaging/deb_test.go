package packaging

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// depsHint is what a test says when a tool it drives is missing.
const depsHint = "run scripts/install-test-deps.sh as root"

// chrootPath is the PATH of every command run inside the test root: the
// test's own environment (HERALD_STATE_DIR and friends) must not leak in.
const chrootPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// tool returns the path of an executable, looking in the sbin directories
// too (a test may run with a user's PATH).
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s is missing: %s", name, depsHint)
	return ""
}

// result is what a finished command left behind.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a command with a deadline and returns its output and exit
// status; only a command that could not run at all, or overran its
// deadline, fails the test.
func run(t *testing.T, timeout time.Duration, dir string, env []string, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: no result within %v\n%s", name, strings.Join(args, " "), timeout, r)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// mustRun is run for a command that has to succeed.
func mustRun(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	r := run(t, timeout, dir, env, "", name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s failed: %s", name, strings.Join(args, " "), r)
	}
	return r.stdout
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "build-deb.sh")); err != nil {
		t.Fatalf("scripts/build-deb.sh not found from %s: %v", root, err)
	}
	return root
}

// snapshotWanted says which files of the tree a package build reads.
func snapshotWanted(name string) bool {
	switch name {
	case "go.mod", "go.sum", "README.md", "testdata/config/herald.cfg.example":
		return true
	}
	if strings.HasSuffix(name, "_test.go") || strings.Contains(name, "/testdata/") {
		return false
	}
	for _, dir := range []string{"cmd/", "internal/", "systemd/", "packaging/", "scripts/"} {
		if strings.HasPrefix(name, dir) {
			return true
		}
	}
	return false
}

// snapshot copies what the package is built from (tracked and untracked,
// not ignored files) to a temporary directory, so that both builds of the
// reproducibility check see the same tree even while others edit theirs.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	out := mustRun(t, time.Minute, root, os.Environ(), "git", "ls-files", "-z", "-co", "--exclude-standard")
	dst := t.TempDir()
	n := 0
	for _, name := range strings.Split(out, "\x00") {
		if name == "" || !snapshotWanted(name) {
			continue
		}
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a plain file
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("snapshot of %s is empty", root)
	}
	return dst
}

// buildDeb runs scripts/build-deb.sh in src and returns the .deb's path.
func buildDeb(t *testing.T, src string, env []string) string {
	t.Helper()
	out := t.TempDir()
	r := run(t, 10*time.Minute, src, env, "", filepath.Join(src, "scripts", "build-deb.sh"), "-o", out)
	if r.code != 0 {
		t.Fatalf("scripts/build-deb.sh failed: %s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	deb := lines[len(lines)-1]
	if filepath.Dir(deb) != out {
		t.Fatalf("build-deb.sh printed %q, want a .deb in %s", deb, out)
	}
	return deb
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// treeDigest describes every file of an unpacked package (mode, owner,
// mtime, content hash or link target), to name what differs between two
// builds.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	d := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.ModTime().Unix())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			desc += " " + fileSHA256(t, p)
		}
		rel, _ := filepath.Rel(dir, p)
		d[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDeb builds the package twice and checks it from every side: same
// bytes, contents, control fields, lintian, and a real install, use and
// purge in a throwaway Debian root.
func TestDeb(t *testing.T) {
	for _, name := range []string{"go", "git", "dpkg", "dpkg-deb", "lintian", "debootstrap", "chroot", "tar"} {
		tool(t, name)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("installing the package into a chroot needs root: run this test as root (%s first)", depsHint)
	}
	root := repoRoot(t)
	pv := strings.Fields(mustRun(t, time.Minute, root, os.Environ(), filepath.Join(root, "scripts", "build-deb.sh"), "--print-version"))
	if len(pv) != 2 {
		t.Fatalf("build-deb.sh --print-version printed %q, want VERSION EPOCH", pv)
	}
	version, epoch := pv[0], pv[1]
	sde, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		t.Fatalf("SOURCE_DATE_EPOCH %q: %v", epoch, err)
	}
	arch := strings.TrimSpace(mustRun(t, time.Minute, "", os.Environ(), "dpkg", "--print-architecture"))

	src := snapshot(t, root)
	env := append(os.Environ(), "HERALD_VERSION="+version, "SOURCE_DATE_EPOCH="+epoch, "LC_ALL=C")
	start := time.Now()
	deb := buildDeb(t, src, env)
	t.Logf("first build %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	deb2 := buildDeb(t, src, env)
	t.Logf("second build %v", time.Since(start).Round(time.Millisecond))

	if want := fmt.Sprintf("herald_%s_%s.deb", version, arch); filepath.Base(deb) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb), want)
	}

	t.Run("reproducible", func(t *testing.T) {
		h1, h2 := fileSHA256(t, deb), fileSHA256(t, deb2)
		if h1 == h2 {
			return
		}
		a, b := t.TempDir(), t.TempDir()
		mustRun(t, time.Minute, "", os.Environ(), "dpkg-deb", "-R", deb, a)
		mustRun(t, time.Minute, "", os.Environ(), "dpkg-deb", "-R", deb2, b)
		da, db := treeDigest(t, a), treeDigest(t, b)
		var diffs []string
		for p, v := range da {
			if db[p] != v {
				diffs = append(diffs, fmt.Sprintf("%s: %s | %s", p, v, db[p]))
			}
		}
		for p, v := range db {
			if _, ok := da[p]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: (missing) | %s", p, v))
			}
		}
		sort.Strings(diffs)
		t.Errorf("two builds of the same tree differ: sha256 %s vs %s; differing members:\n%s\n(no difference in the members means the archive itself differs: order, compression or ar/tar headers)",
			h1, h2, strings.Join(diffs, "\n"))
	})
	t.Run("contents", func(t *testing.T) { checkContents(t, deb, src, version, sde) })
	t.Run("control", func(t *testing.T) { checkControl(t, deb, version, arch) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, deb) })
	t.Run("install", func(t *testing.T) { checkInstall(t, root, deb) })
}

// entry is one line of `dpkg-deb -c`.
type entry struct {
	perm, owner, when, target string
	size                      int64
}

func listDeb(t *testing.T, deb string) map[string]entry {
	t.Helper()
	out := mustRun(t, time.Minute, "", append(os.Environ(), "TZ=UTC"), "dpkg-deb", "-c", deb)
	es := map[string]entry{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 && !(len(f) == 8 && f[6] == "->") {
			t.Fatalf("unexpected dpkg-deb -c line %q", line)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("dpkg-deb -c line %q: %v", line, err)
		}
		e := entry{perm: f[0], owner: f[1], size: size, when: f[3] + " " + f[4]}
		if len(f) == 8 {
			e.target = f[7]
		}
		es[strings.TrimSuffix(f[5], "/")] = e
	}
	return es
}

func checkContents(t *testing.T, deb, src, version string, sde int64) {
	es := listDeb(t, deb)
	const (
		exe  = "-rwxr-xr-x"
		file = "-rw-r--r--"
	)
	want := map[string]string{ // path: mode, or "-> target" for a symlink
		"./usr/bin/herald":                               exe,
		"./usr/sbin/herald-sendmail":                     exe, // setgid comes from postinst's statoverride
		"./usr/lib/herald/herald-mbox-create":            exe, // run by herald-mbox@.service, not setuid
		"./usr/sbin/sendmail":                            "-> herald-sendmail",
		"./usr/sbin/newaliases":                          "-> herald-sendmail",
		"./usr/lib/sendmail":                             "-> ../sbin/herald-sendmail",
		"./usr/bin/mailq":                                "-> ../sbin/herald-sendmail",
		"./usr/bin/newaliases":                           "-> ../sbin/herald-sendmail",
		"./etc/herald/herald.cfg":                        file,
		"./etc/herald/notifications.cfg":                 file,
		"./usr/share/doc/herald/copyright":               file,
		"./usr/share/doc/herald/changelog.gz":            file,
		"./usr/share/doc/herald/README.Debian":           file,
		"./usr/share/man/man8/herald.8.gz":               file,
		"./usr/share/man/man8/herald-sendmail.8.gz":      file,
		"./usr/share/man/man8/sendmail.8.gz":             "-> herald-sendmail.8.gz",
		"./usr/share/man/man8/mailq.8.gz":                "-> herald-sendmail.8.gz",
		"./usr/share/man/man8/newaliases.8.gz":           "-> herald-sendmail.8.gz",
		"./usr/share/lintian/overrides/herald":           file,
		"./usr/share/man/man5/herald.cfg.5.gz":           file,
		"./usr/share/man/man5/notifications.cfg.5.gz":    file,
		"./usr/share/bash-completion/completions/herald": file,
	}
	units, _ := filepath.Glob(filepath.Join(src, "systemd", "*.s*")) // .service, .socket
	for _, u := range units {
		want["./usr/lib/systemd/system/"+filepath.Base(u)] = file
	}
	for kind, conf := range map[string]string{"sysusers": "herald-sysusers.conf", "tmpfiles": "herald-tmpfiles.conf"} {
		if _, err := os.Stat(filepath.Join(src, "systemd", conf)); err == nil {
			want["./usr/lib/"+kind+".d/herald.conf"] = file
		}
	}
	if len(units) == 0 {
		t.Errorf("no systemd units in systemd/: the package would ship none")
	}
	for p, w := range want {
		e, ok := es[p]
		switch {
		case !ok:
			t.Errorf("%s is missing from the package", p)
		case strings.HasPrefix(w, "-> "):
			if e.perm[0] != 'l' || e.target != w[3:] {
				t.Errorf("%s: %s -> %q, want a symlink %s", p, e.perm, e.target, w)
			}
		case e.perm != w:
			t.Errorf("%s: mode %s, want %s", p, e.perm, w)
		}
	}
	if e := es["./etc/herald/notifications.cfg"]; e.size != 0 {
		t.Errorf("notifications.cfg has %d bytes: it must ship empty (Proxmox cannot parse comment lines)", e.size)
	}

	stamp := time.Unix(sde, 0).UTC().Format("2006-01-02 15:04")
	allowed := []string{"./etc/herald", "./usr/bin", "./usr/sbin", "./usr/lib", "./usr/share/doc/herald", "./usr/share/man", "./usr/share/lintian", "./usr/share/bash-completion"}
	for p, e := range es {
		if e.owner != "root/root" {
			t.Errorf("%s is owned by %s, want root/root", p, e.owner)
		}
		if e.when != stamp {
			t.Errorf("%s has mtime %s, want SOURCE_DATE_EPOCH %s", p, e.when, stamp)
		}
		if strings.ContainsAny(e.perm[1:], "sStT") {
			t.Errorf("%s has mode %s: no set-id or sticky bits in the archive", p, e.perm)
		}
		if e.perm[0] != 'l' && e.perm[8] == 'w' {
			t.Errorf("%s is world-writable (%s)", p, e.perm)
		}
		if e.perm[0] == 'd' && e.perm != "drwxr-xr-x" {
			t.Errorf("directory %s has mode %s, want drwxr-xr-x", p, e.perm)
		}
		ok := p == "." || p == "./etc" || p == "./usr" || p == "./usr/share" || p == "./usr/share/doc"
		for _, a := range allowed {
			ok = ok || p == a || strings.HasPrefix(p, a+"/")
		}
		if !ok {
			t.Errorf("%s is outside the package's directories", p)
		}
	}

	// What the files hold.
	x := t.TempDir()
	mustRun(t, time.Minute, "", os.Environ(), "dpkg-deb", "-x", deb, x)
	cfg, err := os.ReadFile(filepath.Join(x, "etc/herald/herald.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(src, "testdata/config/herald.cfg.example"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg, example) {
		t.Errorf("/etc/herald/herald.cfg differs from testdata/config/herald.cfg.example")
	}
	// -trimpath keeps -ldflags out of the build info: the -X values are
	// checked by running the binaries (herald version here, the shim's
	// compiled-in state directory by the install test).
	for _, bin := range []string{"usr/bin/herald", "usr/sbin/herald-sendmail"} {
		info := mustRun(t, time.Minute, "", os.Environ(), "go", "version", "-m", filepath.Join(x, bin))
		for _, f := range []string{"CGO_ENABLED=0", "-trimpath=true"} {
			if !strings.Contains(info, f) {
				t.Errorf("%s was not built with %s:\n%s", bin, f, info)
			}
		}
		// Every linked module needs its paragraph in the copyright file.
		copyright, err := os.ReadFile(filepath.Join(x, "usr/share/doc/herald/copyright"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && (f[0] == "dep" || f[0] == "=>") && !bytes.Contains(copyright, []byte("Files: vendor/"+f[1]+"/*\n")) {
				t.Errorf("copyright has no paragraph for %s, linked into %s", f[1], bin)
			}
		}
	}
	r := run(t, time.Minute, "", []string{chrootPath}, "", filepath.Join(x, "usr/bin/herald"), "version")
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, version) {
		t.Errorf("herald version does not print %s: %s", version, r)
	}
	cl := mustRun(t, time.Minute, "", os.Environ(), "sh", "-c", `gzip -dc "$1" | head -n 1`, "sh", filepath.Join(x, "usr/share/doc/herald/changelog.gz"))
	if want := "herald (" + version + ") "; !strings.HasPrefix(cl, want) {
		t.Errorf("changelog starts %q, want %q", cl, want)
	}
}

func checkControl(t *testing.T, deb, version, arch string) {
	want := map[string]string{
		"Package":      "herald",
		"Version":      version,
		"Architecture": arch,
		"Provides":     "mail-transport-agent",
		"Conflicts":    "mail-transport-agent",
		"Replaces":     "mail-transport-agent",
		"Section":      "mail",
		"Priority":     "optional",
		"Depends":      "passwd",
	}
	for field, w := range want {
		got := strings.TrimSpace(mustRun(t, time.Minute, "", os.Environ(), "dpkg-deb", "-f", deb, field))
		if got != w {
			t.Errorf("%s: %q, want %q", field, got, w)
		}
	}
	for _, field := range []string{"Maintainer", "Description", "Installed-Size"} {
		if strings.TrimSpace(mustRun(t, time.Minute, "", os.Environ(), "dpkg-deb", "-f", deb, field)) == "" {
			t.Errorf("control field %s is missing", field)
		}
	}
	size, err := strconv.Atoi(strings.TrimSpace(mustRun(t, time.Minute, "", os.Environ(), "dpkg-deb", "-f", deb, "Installed-Size")))
	if err != nil || size < 1024 {
		t.Errorf("Installed-Size %d KiB (%v): too small for two Go binaries", size, err)
	}

	ctl := t.TempDir()
	mustRun(t, time.Minute, "", os.Environ(), "dpkg-deb", "-e", deb, ctl)
	conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(conffiles), "/etc/herald/herald.cfg\n/etc/herald/notifications.cfg\n"; got != want {
		t.Errorf("conffiles:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(ctl, s)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("maintainer script %s: %v", s, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v, want 0755", s, fi.Mode().Perm())
		}
		body, _ := os.ReadFile(p)
		if bytes.Contains(body, []byte("@UNITS@")) || !bytes.Contains(body, []byte("herald.service")) {
			t.Errorf("%s: the unit list was not filled in", s)
		}
		if r := run(t, time.Minute, "", os.Environ(), "", "sh", "-n", p); r.code != 0 {
			t.Errorf("%s is not valid sh: %s", s, r)
		}
	}
}

var lintianTag = regexp.MustCompile(`^([EWIPXO]): herald`)

func checkLintian(t *testing.T, deb string) {
	start := time.Now()
	r := run(t, 5*time.Minute, "", append(os.Environ(), "LC_ALL=C.UTF-8"), "", tool(t, "lintian"),
		"--tag-display-limit", "0", "--display-info", "--display-experimental", "--pedantic", "--fail-on", "error,warning", deb)
	took := time.Since(start)
	t.Logf("lintian took %v", took.Round(time.Millisecond))
	if took > time.Minute {
		t.Logf("lintian took more than a minute: consider running it outside go test")
	}
	var bad []string
	for _, line := range strings.Split(r.stdout, "\n") {
		m := lintianTag.FindStringSubmatch(line)
		switch {
		case m == nil:
		case m[1] == "E" || m[1] == "W":
			bad = append(bad, line)
		default:
			t.Logf("lintian: %s", line)
		}
	}
	if len(bad) > 0 || r.code != 0 {
		t.Errorf("lintian reports errors or warnings (fix them, or override with a reason in packaging/debian/lintian-overrides and packaging/lintian-notes.md):\n%s\n%s", strings.Join(bad, "\n"), r)
	}
}

// account is one line of a passwd or group file.
type account struct {
	name        string
	id          int
	home, shell string
}

func readAccounts(t *testing.T, path string) map[string]account {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	as := map[string]account{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		id, _ := strconv.Atoi(f[2])
		a := account{name: f[0], id: id}
		if len(f) >= 7 {
			a.home, a.shell = f[5], f[6]
		}
		as[f[0]] = a
	}
	return as
}

// spoolID is the name of a committed spool entry (internal/spool).
var spoolID = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]{8}$`)

// maildrop returns the committed entries in the test root's maildrop.
func maildrop(t *testing.T, dir string) map[string]bool {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, "var/lib/herald/spool/maildrop"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range es {
		if spoolID.MatchString(e.Name()) {
			ids[e.Name()] = true
		}
	}
	return ids
}

// newEntry returns the one entry in after that is not in before.
func newEntry(t *testing.T, before, after map[string]bool) string {
	t.Helper()
	var fresh []string
	for id := range after {
		if !before[id] {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("want one new maildrop entry, found %v", fresh)
	}
	return fresh[0]
}

func owner(t *testing.T, path string) (uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// tmpfilesDirs reads the "d" lines of a tmpfiles.d file: path → mode,
// user, group.
func tmpfilesDirs(t *testing.T, path string) map[string][3]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ds := map[string][3]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 5 && fl[0] == "d" {
			ds[fl[1]] = [3]string{fl[2], fl[3], fl[4]}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ds
}

// modeString renders permission and sticky bits as tmpfiles.d writes them.
func modeString(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	return fmt.Sprintf("%04o", n)
}

// checkInstall installs the package into a fresh minimal Debian root, uses
// sendmail there as root and as an unprivileged user, and purges it.
func checkInstall(t *testing.T, repo, deb string) {
	cache := os.Getenv("HERALD_TEST_CACHE")
	if cache == "" {
		cache = "/var/cache/herald-test"
	}
	start := time.Now()
	tarball := strings.TrimSpace(mustRun(t, 15*time.Minute, repo, os.Environ(), filepath.Join(repo, "packaging", "test-root.sh"), cache))
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, 5*time.Minute, "", os.Environ(), "tar", "-C", dir, "--numeric-owner", "-xzf", tarball)
	t.Logf("test root ready in %v", time.Since(start).Round(time.Millisecond))
	// Maintainer scripts must not start services here.
	if err := os.WriteFile(filepath.Join(dir, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp/herald.deb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	chroot := tool(t, "chroot")
	in := func(stdin string, args ...string) result {
		t.Helper()
		return run(t, 2*time.Minute, "", []string{chrootPath, "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}, stdin, chroot, append([]string{dir}, args...)...)
	}
	mustIn := func(args ...string) string {
		t.Helper()
		r := in("", args...)
		if r.code != 0 {
			t.Fatalf("in the test root, %s failed: %s", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	as := func(user, script string) result {
		t.Helper()
		return in("", "setpriv", "--reuid="+user, "--regid="+user, "--init-groups", "sh", "-c", script)
	}

	// Twice: the second run is an upgrade over itself (prerm upgrade,
	// postinst configure OLD), which must be idempotent.
	mustIn("dpkg", "-i", "/tmp/herald.deb")
	mustIn("dpkg", "-i", "/tmp/herald.deb")

	users := readAccounts(t, filepath.Join(dir, "etc/passwd"))
	groups := readAccounts(t, filepath.Join(dir, "etc/group"))
	h, ok := users["herald"]
	switch {
	case !ok:
		t.Fatalf("postinst created no user herald")
	case h.id == 0 || h.id >= 1000 || h.home != "/var/lib/herald" || h.shell != "/usr/sbin/nologin":
		t.Errorf("user herald: uid %d, home %s, shell %s; want a system uid, /var/lib/herald, /usr/sbin/nologin", h.id, h.home, h.shell)
	}
	drop, ok := groups["herald-drop"]
	if !ok {
		t.Fatalf("postinst created no group herald-drop")
	}
	if _, ok := groups["herald"]; !ok {
		t.Fatalf("postinst created no group herald")
	}
	name := func(db map[string]account, id int) string {
		for n, a := range db {
			if a.id == id {
				return n
			}
		}
		return strconv.Itoa(id)
	}

	// The shim: setgid herald-drop through a statoverride.
	if got := strings.TrimSpace(mustIn("dpkg-statoverride", "--list", "/usr/sbin/herald-sendmail")); got != "root herald-drop 2755 /usr/sbin/herald-sendmail" {
		t.Errorf("statoverride %q, want root herald-drop 2755 /usr/sbin/herald-sendmail", got)
	}
	shim := filepath.Join(dir, "usr/sbin/herald-sendmail")
	fi, err := os.Stat(shim)
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(t, shim); modeString(fi.Mode()) != "2755" || uid != 0 || gid != drop.id {
		t.Errorf("herald-sendmail: mode %s uid %d gid %d, want 2755 root herald-drop(%d)", modeString(fi.Mode()), uid, gid, drop.id)
	}

	// The state directories: what tmpfiles.d declares (and systemd
	// re-applies at boot) is what postinst made, and the permission model
	// of internal/spool holds.
	want := map[string][3]string{
		"/var/lib/herald/spool/maildrop":   {"1730", "herald", "herald-drop"},
		"/var/lib/herald/spool/incoming":   {"0700", "herald", "herald"},
		"/var/lib/herald/spool/quarantine": {"0700", "herald", "herald"},
		"/var/lib/herald/queue":            {"0700", "herald", "herald"},
		"/var/lib/herald/submit":           {"0710", "herald", "herald-drop"},
	}
	if tf := filepath.Join(dir, "usr/lib/tmpfiles.d/herald.conf"); fileExists(tf) {
		for p, w := range tmpfilesDirs(t, tf) {
			if old, ok := want[p]; ok && old != w {
				t.Errorf("tmpfiles.d declares %s as %v, but the spool's permission model needs %v", p, w, old)
			}
			want[p] = w
		}
	}
	for p, w := range want {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		uid, gid := owner(t, filepath.Join(dir, p))
		got := [3]string{modeString(fi.Mode()), name(users, uid), name(groups, gid)}
		if !fi.IsDir() || got != w {
			t.Errorf("%s: %v (dir %v), want %v", p, got, fi.IsDir(), w)
		}
	}
	for _, p := range []string{"/var/lib/herald", "/var/lib/herald/spool"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Errorf("%s must be traversable by others (the setgid shim runs as any user): %v %v", p, fi.Mode(), err)
		}
	}

	// Units enabled as their [Install] sections say, without systemd running.
	units, _ := filepath.Glob(filepath.Join(dir, "usr/lib/systemd/system/herald*"))
	for _, u := range units {
		body, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(body), "\n") {
			target, ok := strings.CutPrefix(strings.TrimSpace(line), "WantedBy=")
			if !ok {
				continue
			}
			for _, tgt := range strings.Fields(target) {
				link := filepath.Join(dir, "etc/systemd/system", tgt+".wants", filepath.Base(u))
				if dest, err := os.Readlink(link); err != nil || filepath.Base(dest) != filepath.Base(u) {
					t.Errorf("%s is not enabled: %s: %q %v", filepath.Base(u), link, dest, err)
				}
			}
		}
	}
	if r := in("", "dpkg", "--verify", "herald"); r.code != 0 || r.stdout != "" {
		t.Errorf("dpkg --verify herald: %s", r)
	}

	// Admin commands run as root before the daemon's first start must not
	// leave files the herald user cannot use (it could not deliver to
	// root's mailbox, or not even start on a root-owned queue/lock).
	herald := readAccounts(t, filepath.Join(dir, "etc/passwd"))["herald"]
	// Local mail goes to /var/mail/USER, created by the mailbox helper behind
	// herald-mbox.socket; the test root has no systemd, so the socket is
	// served here as systemd would serve it (Accept=yes, the helper run per
	// connection inside the root, root:herald 0660).
	serveMailboxHelper(t, dir, readAccounts(t, filepath.Join(dir, "etc/group"))["herald"].id)
	if r := in("", "herald", "test", "mail-to-root"); r.code != 0 || !strings.Contains(r.stdout, "OK") {
		t.Errorf("herald test mail-to-root before the first start: %s", r)
	}
	if out := mustIn("mailq"); !strings.Contains(out, "Mail queue is empty") {
		t.Errorf("mailq before the first start:\n%s", out)
	}
	if r := in("", "herald", "queue", "list"); r.code != 0 {
		t.Errorf("herald queue list before the first start: %s", r)
	}
	if r := in("", "herald", "queue", "retry", "--all"); r.code != 0 || !strings.Contains(r.stdout, "0 deliveries") {
		t.Errorf("herald queue retry --all before the first start: %s", r)
	}
	if r := in("", "herald", "status"); r.code == 0 {
		t.Errorf("herald status without a daemon succeeded: %s", r)
	}
	if r := in("", "herald", "check"); r.code != 0 {
		t.Errorf("herald check of the installed configuration: %s", r)
	}
	walkErr := filepath.Walk(filepath.Join(dir, "var/lib/herald"), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if uid, _ := owner(t, p); uid != herald.id {
			t.Errorf("%s is owned by uid %d, not herald (%d): the daemon could not use it", strings.TrimPrefix(p, dir), uid, herald.id)
		}
		return nil
	})
	if walkErr != nil {
		t.Error(walkErr)
	}
	if uid, gid := owner(t, filepath.Join(dir, "var/mail/root")); uid != 0 || gid != readAccounts(t, filepath.Join(dir, "etc/group"))["mail"].id {
		t.Errorf("herald test mail-to-root: /var/mail/root is owned by %d:%d, want root:mail", uid, gid)
	}

	// sendmail as root.
	before := maildrop(t, dir)
	if r := in("", "sh", "-c", `printf 'Subject: hi\n\nbody\n' | /usr/sbin/sendmail root`); r.code != 0 {
		t.Fatalf("sendmail as root: %s", r)
	}
	rootID := newEntry(t, before, maildrop(t, dir))
	entry := filepath.Join(dir, "var/lib/herald/spool/maildrop", rootID)
	if uid, _ := owner(t, entry); uid != 0 {
		t.Errorf("root's entry is owned by uid %d, want 0", uid)
	}
	if body, err := os.ReadFile(entry); err != nil || !bytes.HasPrefix(body, []byte("HERALD-SPOOL 1\n")) || !bytes.Contains(body, []byte("Subject: hi")) {
		t.Errorf("root's entry is not the spooled mail: %q %v", body, err)
	}

	// sendmail as an unprivileged user, through another of its names.
	mustIn("useradd", "--no-create-home", "alice")
	alice := readAccounts(t, filepath.Join(dir, "etc/passwd"))["alice"]
	before = maildrop(t, dir)
	if r := as("alice", `printf 'To: root\nSubject: from alice\n\nbody\n' | /usr/lib/sendmail -t -i`); r.code != 0 {
		t.Fatalf("sendmail as alice: %s", r)
	}
	aliceID := newEntry(t, before, maildrop(t, dir))
	aliceEntry := filepath.Join(dir, "var/lib/herald/spool/maildrop", aliceID)
	if uid, _ := owner(t, aliceEntry); uid != alice.id {
		t.Errorf("alice's entry is owned by uid %d, want alice's %d", uid, alice.id)
	}
	if body, err := os.ReadFile(aliceEntry); err != nil || !bytes.Contains(body, []byte("Subject: from alice")) {
		t.Errorf("alice's entry is not her mail: %q %v", body, err)
	}
	if r := as("alice", "ls /var/lib/herald/spool/maildrop"); r.code == 0 {
		t.Errorf("alice can list the maildrop: %s", r)
	}
	if r := as("alice", "cat /var/lib/herald/spool/maildrop/"+rootID); r.code == 0 {
		t.Errorf("alice can read root's mail: %s", r)
	}
	if r := as("alice", "mailq"); r.code != 77 {
		t.Errorf("mailq as alice: want exit 77 (EX_NOPERM): %s", r)
	}
	if r := as("alice", "newaliases"); r.code != 0 {
		t.Errorf("newaliases as alice: %s", r)
	}
	if out := mustIn("mailq"); !strings.Contains(out, rootID) || !strings.Contains(out, aliceID) {
		t.Errorf("mailq as root does not list %s and %s:\n%s", rootID, aliceID, out)
	}

	// With the daemon's socket there (served by the test), sendmail hands
	// the mail over it: alice's setgid shim reaches it through submit/
	// (0710 herald:herald-drop), the server is told alice's uid by the
	// kernel, and alice without the shim's group cannot reach it.
	got, stopSubmit := serveSubmit(t, dir, herald.id)
	before = maildrop(t, dir)
	if r := as("alice", `printf 'Subject: over the socket\n\nbody\n' | /usr/sbin/sendmail root`); r.code != 0 {
		t.Fatalf("sendmail as alice with the socket served: %s", r)
	}
	select {
	case s := <-got:
		if s.env.PeerUID == nil || *s.env.PeerUID != alice.id || !strings.Contains(s.body, "Subject: over the socket") {
			t.Errorf("the socket got uid %v and %q, want alice's %d and her mail", s.env.PeerUID, s.body, alice.id)
		}
	default:
		t.Errorf("sendmail as alice did not use the daemon's socket")
	}
	if after := maildrop(t, dir); len(after) != len(before) {
		t.Errorf("a mail the daemon took is in the maildrop too: %d entries, were %d", len(after), len(before))
	}
	if r := as("alice", "test -e /var/lib/herald/submit/submit.sock"); r.code == 0 {
		t.Errorf("alice reaches the submission socket without the shim's group")
	}
	stopSubmit()

	// remove keeps the state and the users; purge removes everything.
	mustIn("dpkg", "-r", "herald")
	if !fileExists(filepath.Join(dir, "var/lib/herald/spool/maildrop", aliceID)) {
		t.Errorf("dpkg -r deleted the spool: only purge may")
	}
	if _, ok := readAccounts(t, filepath.Join(dir, "etc/passwd"))["herald"]; !ok {
		t.Errorf("dpkg -r deleted the user herald: only purge may")
	}
	if fileExists(filepath.Join(dir, "usr/sbin/sendmail")) {
		t.Errorf("/usr/sbin/sendmail is still there after dpkg -r")
	}
	mustIn("dpkg", "--purge", "herald")
	for _, p := range []string{"var/lib/herald", "etc/herald", "usr/sbin/herald-sendmail", "usr/lib/tmpfiles.d/herald.conf"} {
		if fileExists(filepath.Join(dir, p)) {
			t.Errorf("/%s is still there after purge", p)
		}
	}
	wants, _ := filepath.Glob(filepath.Join(dir, "etc/systemd/system/*.wants/herald*"))
	if len(wants) > 0 {
		t.Errorf("enablement links left after purge: %v", wants)
	}
	for file, names := range map[string][]string{"etc/passwd": {"herald"}, "etc/group": {"herald", "herald-drop"}} {
		db := readAccounts(t, filepath.Join(dir, file))
		for _, n := range names {
			if _, ok := db[n]; ok {
				t.Errorf("%s still in /%s after purge", n, file)
			}
		}
		if file == "etc/passwd" {
			if _, ok := db["alice"]; !ok {
				t.Errorf("purge deleted the unrelated user alice")
			}
		}
	}
	if r := in("", "dpkg-statoverride", "--list", "/usr/sbin/herald-sendmail"); r.code == 0 {
		t.Errorf("statoverride left after purge: %s", r)
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestVersionMapping drives build-deb.sh --print-version through a git
// history with tags and checks the Debian versions, including that they
// sort as the history does.
func TestVersionMapping(t *testing.T) {
	for _, name := range []string{"git", "dpkg"} {
		tool(t, name)
	}
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "build-deb.sh"))
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "scripts", "build-deb.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	const when = "2025-05-20T12:00:00Z"
	env := append(os.Environ(), "GIT_AUTHOR_DATE="+when, "GIT_COMMITTER_DATE="+when,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+repo, "HERALD_VERSION=", "SOURCE_DATE_EPOCH=")
	git := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(mustRun(t, time.Minute, repo, env, "git", args...))
	}
	n := 0
	commit := func() {
		t.Helper()
		n++
		if err := os.WriteFile(filepath.Join(repo, "file"), []byte(strconv.Itoa(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "-A")
		git("commit", "-q", "-m", "change "+strconv.Itoa(n))
	}
	printVersion := func() result {
		t.Helper()
		return run(t, time.Minute, repo, env, "", filepath.Join(repo, "scripts", "build-deb.sh"), "--print-version")
	}
	git("init", "-q")

	var history []string
	for _, step := range []struct {
		name  string
		do    func()
		want  func() string // the version, from the repository's state
		sorts bool          // must sort after the previous step
	}{
		{"no tag", commit, func() string { return "0.0~git20250520." + git("rev-parse", "--short", "HEAD") }, false},
		{"release candidate", func() { commit(); git("tag", "v1.2.0-rc1") }, func() string { return "1.2.0~rc1" }, true},
		{"after the candidate", commit, func() string { return "1.2.0~rc1+git20250520.1." + git("rev-parse", "--short", "HEAD") }, true},
		{"release", func() { commit(); git("tag", "v1.2.0") }, func() string { return "1.2.0" }, true},
		{"two commits later", func() { commit(); commit() }, func() string { return "1.2.0+git20250520.2." + git("rev-parse", "--short", "HEAD") }, true},
		{"uncommitted change", func() {
			if err := os.WriteFile(filepath.Join(repo, "file"), []byte("edited"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func() string { return "1.2.0+git20250520.2." + git("rev-parse", "--short", "HEAD") + "+dirty" }, true},
		{"next release", func() { commit(); git("tag", "v1.2.1") }, func() string { return "1.2.1" }, true},
	} {
		step.do()
		r := printVersion()
		if r.code != 0 {
			t.Fatalf("%s: %s", step.name, r)
		}
		got := strings.Fields(r.stdout)
		want := step.want()
		if len(got) != 2 || got[0] != want || got[1] != "1747742400" {
			t.Errorf("%s: printed %q, want %q and SOURCE_DATE_EPOCH 1747742400", step.name, r.stdout, want)
			continue
		}
		if step.sorts && len(history) > 0 {
			prev := history[len(history)-1]
			if c := run(t, time.Minute, "", os.Environ(), "", "dpkg", "--compare-versions", prev, "lt", got[0]); c.code != 0 {
				t.Errorf("%s: %s does not sort after %s", step.name, got[0], prev)
			}
		}
		history = append(history, got[0])
	}

	// A tag that cannot become a Debian version is refused, not mangled.
	commit()
	git("tag", "release-x")
	if r := printVersion(); r.code == 0 || !strings.Contains(r.stderr, "not a valid Debian version") {
		t.Errorf("tag release-x: want a refusal naming the invalid version: %s", r)
	}
}

// serveMailboxHelper serves /run/herald/mbox.sock of the test root at dir as
// herald-mbox.socket does: one herald-mbox-create per connection, run
// inside the root, the socket root:herald (gid) 0660. It stops with the
// test.
func serveMailboxHelper(t *testing.T, dir string, gid int) {
	t.Helper()
	activate := tool(t, "systemd-socket-activate")
	sock := filepath.Join(dir, "run/herald/mbox.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(activate, "--listen="+sock, "--accept", "--inetd",
		tool(t, "chroot"), dir, "/usr/lib/herald/herald-mbox-create")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mailbox helper socket:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mailbox helper socket did not appear: %s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Chown(sock, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		t.Fatal(err)
	}
}
