package spool

// Tests of recovery: partial files of killed writers, corrupt entries set aside (daemon.go).

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/safeio"
)

func TestRecoverQuarantinesCorruptEntries(t *testing.T) {
	s, _, lb := newSpool(t)
	good, err := s.Submit(mailEnv("a@b"), strings.NewReader("fine\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	id := func(i int) string { return fmt.Sprintf("%016x-%08x", 1000+i, i) }
	files := []struct {
		dir, name, content string
	}{
		{s.incoming, id(1), "garbage\nmore"},
		{s.incoming, id(2), "HERALD-SPOOL 1\n{not json\nbody"},
		{s.incoming, id(3), "HERALD-SPOOL 1\n{\"kind\":\"mail\""}, // truncated, no newline
		{s.incoming, id(4), "HERALD-SPOOL 9\n{\"kind\":\"mail\"}\nx"},
		{s.incoming, id(5), "HERALD-SPOOL 1\n{\"kind\":\"weird\"}\nx"},
		{s.maildrop, id(6), "HERALD-SPOOL 1\n{\"kind\":\"mail\",\"source\":\"smtp\"}\nforged source"},
		{s.maildrop, id(7), ""},
		{s.incoming, "stray-file", "who put this here"},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(f.dir, f.name), []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(s.maildrop, id(8))); err != nil {
		t.Fatal(err)
	}
	removed, quarantined, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if removed != 0 || quarantined != len(files)+1 {
		t.Fatalf("Recover = removed %d, quarantined %d; want 0, %d\nlog:\n%s", removed, quarantined, len(files)+1, lb)
	}
	q := dirNames(t, s.quarantine)
	if len(q) != len(files)+1 {
		t.Fatalf("quarantine holds %v", q)
	}
	// Content is kept, not deleted.
	b, err := os.ReadFile(filepath.Join(s.quarantine, "incoming-"+id(1)))
	if err != nil || string(b) != "garbage\nmore" {
		t.Fatalf("quarantined content %q, %v", b, err)
	}
	if c := strings.Count(lb.String(), "entry quarantined"); c != len(files)+1 {
		t.Errorf("%d quarantine log lines, want %d:\n%s", c, len(files)+1, lb)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 1 || es[0].ID != good {
		t.Fatalf("Pending = %+v, %v; want only the good entry", es, err)
	}
}

func TestPendingQuarantinesCorruptEntry(t *testing.T) {
	s, _, lb := newSpool(t)
	name := fmt.Sprintf("%016x-%08x", 1, 1)
	if err := os.WriteFile(filepath.Join(s.incoming, name), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 0 {
		t.Fatalf("Pending = %v, %v", es, err)
	}
	if q := dirNames(t, s.quarantine); len(q) != 1 {
		t.Fatalf("quarantine holds %v", q)
	}
	if !strings.Contains(lb.String(), "bad magic") {
		t.Errorf("log does not say why:\n%s", lb)
	}
}

func TestQuarantineEntry(t *testing.T) {
	s, _, lb := newSpool(t)
	id, err := s.Submit(mailEnv("a@b"), strings.NewReader("x"), 0)
	if err != nil {
		t.Fatal(err)
	}
	es, _ := s.Pending()
	if err := s.Quarantine(es[0], errors.New("conversion crashed")); err != nil {
		t.Fatal(err)
	}
	if q := dirNames(t, s.quarantine); len(q) != 1 || q[0] != "incoming-"+id {
		t.Fatalf("quarantine holds %v", q)
	}
	if !strings.Contains(lb.String(), "conversion crashed") {
		t.Errorf("log lacks the reason:\n%s", lb)
	}
	if es, _ := s.Pending(); len(es) != 0 {
		t.Fatalf("still pending: %v", es)
	}
}

// writeTemp makes a partial entry file as a writer would leave it.
func writeTemp(t *testing.T, dir string, age time.Duration) string {
	t.Helper()
	p := filepath.Join(dir, safeio.TempPrefix+NewID(time.Now())+"-123")
	if err := os.WriteFile(p, []byte("HERALD-SPOOL 1\n{\"kind\":\"mail\"}\npartial"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRecoverPartials(t *testing.T) {
	s, _, lb := newSpool(t)
	dead := writeTemp(t, s.maildrop, time.Hour)
	deadIncoming := writeTemp(t, s.incoming, time.Minute)
	young := writeTemp(t, s.maildrop, 0)

	// A live writer: another open file description holds the lock.
	live := writeTemp(t, s.incoming, time.Hour)
	lf, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// A pending kick is not a partial entry.
	if err := os.WriteFile(filepath.Join(s.maildrop, kickName), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	removed, quarantined, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if removed != 2 || quarantined != 0 {
		t.Fatalf("Recover = %d removed, %d quarantined; want 2, 0\n%s", removed, quarantined, lb)
	}
	for _, p := range []string{dead, deadIncoming} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("dead writer's partial %s still there (%v)", p, err)
		}
	}
	for _, p := range []string{live, young, filepath.Join(s.maildrop, kickName)} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if !strings.Contains(lb.String(), "removed partial entry") || !strings.Contains(lb.String(), "live writer") {
		t.Errorf("log lacks the removal/keep lines:\n%s", lb)
	}
}

// blockingReader delivers some bytes, then blocks until released.
type blockingReader struct {
	first   []byte
	started chan struct{}
	release chan struct{}
}

// TestRecoverKeepsLiveSubmit runs Recover while a real Submit is in the
// middle of its body: the writer's partial file must survive and the
// submission must complete.
func TestRecoverKeepsLiveSubmit(t *testing.T) {
	s, state, _ := newSpool(t)
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	br := &blockingReader{first: []byte("Subject: slow\n\n"), started: make(chan struct{}), release: make(chan struct{})}
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := d.Submit(mailEnv("a@b"), br, 0)
		done <- result{id, err}
	}()
	select {
	case <-br.started:
	case <-time.After(10 * time.Second):
		t.Fatal("Submit never started reading its body")
	}
	// Make the partial look old, so only the lock protects it.
	names := dirNames(t, s.maildrop)
	if len(names) != 1 || !strings.HasPrefix(names[0], safeio.TempPrefix) {
		t.Fatalf("maildrop holds %v, want one partial file", names)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(s.maildrop, names[0]), old, old); err != nil {
		t.Fatal(err)
	}
	removed, _, err := s.Recover()
	if err != nil || removed != 0 {
		t.Fatalf("Recover during a live Submit: removed %d, %v", removed, err)
	}
	close(br.release)
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Submit did not finish")
	}
	if r.err != nil {
		t.Fatalf("Submit: %v", r.err)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 1 || es[0].ID != r.id {
		t.Fatalf("Pending = %+v, %v", es, err)
	}
}

// TestRecoverAfterKilledWriter kills (SIGKILL) a real writer process in the
// middle of its submission: its partial file is removed by Recover, nothing
// becomes pending.
func TestRecoverAfterKilledWriter(t *testing.T) {
	s, state, lb := newSpool(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
	cmd.Env = append(os.Environ(), "HERALD_SPOOL_HELPER_STATE="+state)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := io.WriteString(stdin, "Subject: will die\n\npartial body\n"); err != nil {
		t.Fatal(err)
	}
	// Wait until the writer's partial file holds the body.
	deadline := time.Now().Add(20 * time.Second)
	var partial string
	for partial == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the helper never wrote a partial file; maildrop holds %v", dirNames(t, s.maildrop))
		}
		for _, n := range dirNames(t, s.maildrop) {
			if st, err := os.Stat(filepath.Join(s.maildrop, n)); err == nil && st.Size() > 40 {
				partial = filepath.Join(s.maildrop, n)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if removed, _, err := s.Recover(); err != nil || removed != 0 {
		t.Fatalf("Recover while the writer lives: removed %d, %v", removed, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(partial, old, old); err != nil {
		t.Fatal(err)
	}
	removed, quarantined, err := s.Recover()
	if err != nil || removed != 1 || quarantined != 0 {
		t.Fatalf("Recover after the kill = %d, %d, %v; want 1 removed\n%s", removed, quarantined, err, lb)
	}
	if n := dirNames(t, s.maildrop); len(n) != 0 {
		t.Fatalf("leftovers: %v", n)
	}
	if es, _ := s.Pending(); len(es) != 0 {
		t.Fatalf("pending after a killed writer: %v", es)
	}
}

// TestHelperWriter is the writer process of TestRecoverAfterKilledWriter.
func TestHelperWriter(t *testing.T) {
	state := os.Getenv("HERALD_SPOOL_HELPER_STATE")
	if state == "" {
		return // only meaningful as the helper process
	}
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Submit(mailEnv("a@b"), os.Stdin, 0); err != nil {
		t.Fatal(err)
	}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	select {
	case <-b.started:
	default:
		close(b.started)
	}
	<-b.release
	return 0, io.EOF
}
