package safeio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, content := range []string{"one", "two"} {
		if err := WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v", got, err)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	assertNoTemps(t, dir)
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

// Every injected failure must leave either the old content or (for a first
// write) no file, and never a temporary file.
func TestEveryFailurePoint(t *testing.T) {
	steps := []Step{StepCreate, StepWrite, StepSync, StepClose, StepRename, StepSyncDir}
	for _, step := range steps {
		t.Run(string(step), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if err := WriteFile(p, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("injected")
			FailHook = func(s Step, _ string) error {
				if s == step {
					return boom
				}
				return nil
			}
			defer func() { FailHook = nil }()
			err := WriteFile(p, []byte("new"), 0o644)
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want injected failure", err)
			}
			got, _ := os.ReadFile(p)
			// Only a directory-sync failure happens after the rename.
			want := "old"
			if step == StepSyncDir {
				want = "new"
			}
			if string(got) != want {
				t.Fatalf("content %q, want %q", got, want)
			}
			assertNoTemps(t, dir)
		})
	}
}

func TestTempAbortAndDoubleCommit(t *testing.T) {
	dir := t.TempDir()
	tmp, err := Create(filepath.Join(dir, "x"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	tmp.Abort()
	assertNoTemps(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Fatalf("aborted file exists: %v", err)
	}
	tmp2, _ := Create(filepath.Join(dir, "y"), 0o600)
	if _, err := tmp2.ReadFrom(strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if err := tmp2.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := tmp2.Commit(); err == nil {
		t.Fatal("second commit succeeded")
	}
	tmp2.Abort() // no-op after commit
	if b, _ := os.ReadFile(filepath.Join(dir, "y")); string(b) != "abc" {
		t.Fatalf("content %q", b)
	}
}

// A SyncDir call is served only by an fsync that started after it: one
// already running may predate the caller's rename.
func TestSyncDirWaitsForAnFsyncStartedAfterTheCall(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	calls := 0
	release := make(chan struct{})
	dirFsync = func(d string) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			<-release
		}
		return nil
	}
	defer func() { dirFsync = fsyncDir }()

	first := make(chan error)
	go func() { first <- SyncDir(dir) }()
	waitCalls := func(want int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := calls
			mu.Unlock()
			if n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("fsync %d never started", want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitCalls(1) // fsync 1 is running and blocked
	second := make(chan error)
	go func() { second <- SyncDir(dir) }()
	time.Sleep(20 * time.Millisecond) // let the second caller register
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("%d fsyncs: the second caller must not have been served by the first", calls)
	}
}

// Many concurrent callers share few fsyncs, and a failed fsync reaches every
// caller it served.
func TestSyncDirCoalescesAndReportsFailures(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	calls := 0
	fail := false
	dirFsync = func(string) error {
		mu.Lock()
		calls++
		f := fail
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		if f {
			return errors.New("disk gone")
		}
		return nil
	}
	defer func() { dirFsync = fsyncDir }()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := SyncDir(dir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	if calls >= 50 || calls < 1 {
		t.Errorf("%d fsyncs for 50 concurrent callers", calls)
	}
	fail = true
	mu.Unlock()
	if err := SyncDir(dir); err == nil {
		t.Fatal("a failed fsync was reported as success")
	}
}
