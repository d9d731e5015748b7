package mailbox

import (
	"errors"
	"herald/internal/testkit"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// needRoot fails (never skips) when the test cannot hand files to users.
func needRoot(t *testing.T) {
	t.Helper()
	testkit.Root(t, "it creates mailboxes owned by other users")
}

func ids(t *testing.T, name string) (uid, mailGID int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(Group)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	mailGID, _ = strconv.Atoi(g.Gid)
	return uid, mailGID
}

func checkMailbox(t *testing.T, path, owner string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := ids(t, owner)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != Mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Fatalf("%s: mode %v uid %d gid %d; want regular 0660 %s:mail (%d:%d)", path, fi.Mode(), st.Uid, st.Gid, owner, uid, gid)
	}
}

func TestCreate(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := Create(dir, "nobody"); err != nil {
		t.Fatal(err)
	}
	checkMailbox(t, filepath.Join(dir, "nobody"), "nobody")
	// An existing mailbox with content is left alone.
	if err := os.WriteFile(filepath.Join(dir, "nobody"), []byte("From x\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := Create(dir, "nobody"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "nobody")); string(b) != "From x\n" {
		t.Fatalf("existing mailbox changed: %q", b)
	}
	for _, tc := range []struct{ name, err string }{
		{"../etc/passwd", "invalid user name"},
		{"a/b", "invalid user name"},
		{"-rf", "invalid user name"},
		{"", "invalid user name"},
		{"no-such-user-herald-test", "no local user"},
	} {
		if err := Create(dir, tc.name); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Create(%q) = %v, want %q", tc.name, err, tc.err)
		}
	}
	// A symlink planted where the mailbox goes is refused, not followed.
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := Create(dir, "root"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Create over a symlink = %v", err)
	}
}

// TestHelperOverSocket runs the helper protocol on a unix socket, as
// herald-mbox.socket does, and the daemon's side of it.
func TestHelperOverSocket(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "mbox.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = Serve(c, c, dir) // the client sees the answer
			_ = c.Close()
		}
	}()
	c := Creator{Dir: dir, Socket: sock, viaHelper: true}
	if err := c.Create("nobody"); err != nil {
		t.Fatal(err)
	}
	checkMailbox(t, filepath.Join(dir, "nobody"), "nobody")
	if err := c.Create("no-such-user-herald-test"); err == nil || !strings.Contains(err.Error(), `mailbox helper: no local user "no-such-user-herald-test"`) {
		t.Fatalf("unknown user: %v", err)
	}
	gone := Creator{Dir: dir, Socket: filepath.Join(t.TempDir(), "none.sock"), viaHelper: true}
	if err := gone.Create("nobody"); err == nil || !strings.Contains(err.Error(), "herald-mbox.socket") || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("no helper: %v", err)
	}
}

func TestServeBadRequest(t *testing.T) {
	var out strings.Builder
	if err := Serve(strings.NewReader("no newline"), &out, t.TempDir()); err == nil || !strings.HasPrefix(out.String(), "error: request") {
		t.Fatalf("Serve = %v, %q", err, out.String())
	}
	out.Reset()
	if err := Serve(strings.NewReader(strings.Repeat("a", 100)+"\n"), &out, t.TempDir()); err == nil || !strings.HasPrefix(out.String(), "error: ") {
		t.Fatalf("long name: %v, %q", err, out.String())
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"root": true, "alice.b": true, "svc-x_1": true, "host$": true,
		"": false, ".hidden": false, "-x": false, "a b": false, "a/b": false, "ä": false, "a$b": false,
		strings.Repeat("a", 33): false,
	} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
}

// FuzzServe: whatever a connection sends, the helper answers one line and
// creates nothing but a mailbox named by a valid user name.
func FuzzServe(f *testing.F) {
	f.Add("root\n")
	f.Add("../etc/passwd\n")
	f.Add("a\x00b\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, req string) {
		dir := t.TempDir()
		var out strings.Builder
		err := Serve(strings.NewReader(req), &out, dir)
		if strings.Count(out.String(), "\n") != 1 || (err == nil) != (out.String() == "ok\n") {
			t.Fatalf("Serve(%q) = %v, answer %q", req, err, out.String())
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !ValidName(e.Name()) {
				t.Fatalf("Serve(%q) created %q", req, e.Name())
			}
		}
	})
}
