package safeio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// recordSyncs makes SyncDir record the directories it fsyncs (and still
// fsync them) for the rest of the test.
func recordSyncs(t *testing.T) func() []string {
	t.Helper()
	var mu sync.Mutex
	var synced []string
	old := dirFsync
	dirFsync = func(dir string) error {
		mu.Lock()
		synced = append(synced, dir)
		mu.Unlock()
		return old(dir)
	}
	t.Cleanup(func() { dirFsync = old })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), synced...)
	}
}

func TestMkdirAll(t *testing.T) {
	tests := []struct {
		name    string
		exist   []string // directories made before
		file    string   // a regular file made before
		mk      string
		wantErr error
		synced  []string // parents fsynced, relative to the temp dir ("." for it)
	}{
		{name: "one level", mk: "a", synced: []string{"."}},
		{name: "nested", mk: "a/b/c", synced: []string{".", "a", "a/b"}},
		{name: "parent exists", exist: []string{"a"}, mk: "a/b", synced: []string{"a"}},
		{name: "exists", exist: []string{"a/b"}, mk: "a/b"},
		{name: "file in the way", file: "a", mk: "a", wantErr: syscall.ENOTDIR},
		{name: "file as parent", file: "a", mk: "a/b", wantErr: syscall.ENOTDIR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tc.exist {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(root, tc.file), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			synced := recordSyncs(t)
			err := MkdirAll(filepath.Join(root, tc.mk), 0o700)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(filepath.Join(root, tc.mk))
			if err != nil || !st.IsDir() {
				t.Fatalf("not a directory: %v", err)
			}
			var want []string
			for _, s := range tc.synced {
				want = append(want, filepath.Join(root, s))
			}
			if got := synced(); !slices.Equal(got, want) {
				t.Fatalf("fsynced %q, want %q", got, want)
			}
		})
	}
}

func TestMkdirExactMode(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "maildrop")
	synced := recordSyncs(t)
	mode := os.ModeSticky | 0o733
	if err := Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode() & (os.ModePerm | os.ModeSticky | os.ModeSetgid); got != os.ModeSticky|0o733 {
		t.Fatalf("mode %v, want sticky 0733 whatever the umask", st.Mode())
	}
	if got := synced(); !slices.Equal(got, []string{root}) {
		t.Fatalf("fsynced %q, want the parent", got)
	}
	// An existing directory keeps its mode.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("existing directory's mode changed to %v", st.Mode())
	}
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Mkdir(filepath.Join(root, "f"), 0o700); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("a file in the way: err = %v", err)
	}
}

func TestMoveAside(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "queue")
	q := filepath.Join(root, "quarantine")
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	synced := recordSyncs(t)
	var dests []string
	for i, content := range []string{"first", "second", "third"} {
		p := filepath.Join(src, "bad")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		dest, err := MoveAside(p, q, "bad", 0o700)
		if err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("move %d: the file is still at its place: %v", i, err)
		}
		got, err := os.ReadFile(dest)
		if err != nil || string(got) != content {
			t.Fatalf("move %d: %s holds %q, %v", i, dest, got, err)
		}
		dests = append(dests, filepath.Base(dest))
	}
	if want := []string{"bad", "bad.1", "bad.2"}; !slices.Equal(dests, want) {
		t.Fatalf("set aside as %q, want %q (nothing overwritten)", dests, want)
	}
	// The quarantine directory's creation (root), then per move both
	// directories.
	want := []string{root, q, src, q, src, q, src}
	if got := synced(); !slices.Equal(got, want) {
		t.Fatalf("fsynced %q, want %q", got, want)
	}
	if _, err := MoveAside(filepath.Join(src, "missing"), q, "missing", 0o700); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("moving a missing file: err = %v", err)
	}
}

// LinkAside keeps the content a file had, under a name of its own,
// however the file is replaced later; nothing set aside is overwritten.
func TestLinkAside(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "done.log")
	q := filepath.Join(root, "quarantine")
	var dests []string
	for i, content := range []string{"first", "second"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		synced := recordSyncs(t)
		dest, err := LinkAside(p, q, "done.log", 0o700)
		if err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
		if got := synced(); !slices.Contains(got, q) {
			t.Errorf("link %d: fsynced %q, not the quarantine", i, got)
		}
		// The file is replaced the way a compaction replaces it.
		if err := WriteFile(p, []byte("replaced"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(dest); err != nil || string(got) != content {
			t.Fatalf("link %d: %s holds %q, %v", i, dest, got, err)
		}
		dests = append(dests, filepath.Base(dest))
	}
	if want := []string{"done.log", "done.log.1"}; !slices.Equal(dests, want) {
		t.Fatalf("set aside as %q, want %q", dests, want)
	}
}

func TestOpenAppend(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "events.jsonl")
	synced := recordSyncs(t)
	for i, line := range []string{"one\n", "two\n"} {
		f, err := OpenAppend(p, os.O_WRONLY, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		// Only the open that created the file fsyncs the directory.
		if got := synced(); len(got) != 1 || got[0] != root {
			t.Fatalf("after open %d fsynced %q, want the directory once", i, got)
		}
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "one\ntwo\n" {
		t.Fatalf("content %q, %v", got, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640&^umask() {
		t.Fatalf("mode %v", st.Mode())
	}
	if _, err := OpenAppend(filepath.Join(root, "no", "such"), os.O_WRONLY, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing directory: err = %v", err)
	}
}

func TestOpenAppendFailedDirSync(t *testing.T) {
	root := t.TempDir()
	boom := errors.New("injected")
	old := dirFsync
	dirFsync = func(string) error { return boom }
	t.Cleanup(func() { dirFsync = old })
	if _, err := OpenAppend(filepath.Join(root, "f"), os.O_WRONLY, 0o600); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the fsync failure", err)
	}
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

// CutBack returns the file to its size before a failed append and keeps
// the cause of the failure.
func TestCutBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	f, err := OpenAppend(path, os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("kept\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("torn rec"); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("no space left")
	if err := CutBack(f, 5, cause); !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Fatalf("CutBack = %v, want the cause alone", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "kept\n" {
		t.Fatalf("after CutBack the file holds %q", b)
	}
	f.Close()
	if err := CutBack(f, 0, cause); !errors.Is(err, cause) || !strings.Contains(err.Error(), "truncating back to 0 bytes failed") {
		t.Fatalf("CutBack on a closed file = %v", err)
	}
}
