package app

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"herald/internal/submit"
)

// The submission socket's directory: created 0700 when missing (a
// development run), kept as the package made it (0710), refused when
// others could write it; a killed daemon's socket is replaced.
func TestListenSubmit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    os.FileMode // 0: missing
		stale   bool
		want    os.FileMode
		wantErr string
	}{
		{name: "missing", want: 0o700},
		{name: "package", mode: 0o710, want: 0o710},
		{name: "stale socket", mode: 0o710, stale: true, want: 0o710},
		{name: "group writable", mode: 0o770, wantErr: "writable by group or others"},
		{name: "world writable", mode: 0o1777, wantErr: "writable by group or others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), submit.DirName)
			if tc.mode != 0 {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			sock := filepath.Join(dir, submit.SocketName)
			if tc.stale {
				l, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				l.(*net.UnixListener).SetUnlinkOnClose(false)
				l.Close()
			}
			l, err := listenSubmit(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
				}
				if _, err := os.Lstat(sock); err == nil {
					t.Fatal("a socket was bound in a directory others can write")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != tc.want {
				t.Fatalf("directory mode %v %v, want %v", st.Mode().Perm(), err, tc.want)
			}
			if st, err := os.Stat(sock); err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o666 {
				t.Fatalf("socket %v %v, want a socket, mode 0666", st.Mode(), err)
			}
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatalf("cannot connect: %v", err)
			}
			c.Close()
		})
	}
}
