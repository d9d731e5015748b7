package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"herald/internal/safeio"
	"herald/internal/testkit"
)

// newSpool opens a spool in a fresh temporary state directory.
func newSpool(t *testing.T) (*Spool, string, *testkit.Buffer) {
	t.Helper()
	state := t.TempDir()
	lb := &testkit.Buffer{}
	s, err := Open(state, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, state, lb
}

func mailEnv(from string, rcpt ...string) Envelope {
	return Envelope{Kind: KindMail, Source: "sendmail", From: from, Recipients: rcpt}
}

// setHook installs a safeio failure hook for the duration of the test.
func setHook(t *testing.T, h func(step safeio.Step, path string) error) {
	t.Helper()
	safeio.FailHook = h
	t.Cleanup(func() { safeio.FailHook = nil })
}

// dirNames lists every name in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	names, err := readNames(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	sort.Strings(names)
	return names
}

func TestOpenCreatesDirectoriesWithModes(t *testing.T) {
	s, state, _ := newSpool(t)
	for _, c := range []struct {
		dir  string
		want os.FileMode
	}{
		{filepath.Join(state, "spool"), os.ModeDir | 0o755},
		{s.maildrop, os.ModeDir | os.ModeSticky | 0o730},
		{s.incoming, os.ModeDir | 0o700},
		{s.quarantine, os.ModeDir | 0o700},
	} {
		st, err := os.Stat(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != c.want {
			t.Errorf("%s: mode %v, want %v", c.dir, st.Mode(), c.want)
		}
	}
	// Opening again keeps everything as it is.
	if _, err := Open(state, nil); err != nil {
		t.Fatalf("second Open: %v", err)
	}
}

func TestOpenRefusesDangerousModes(t *testing.T) {
	for _, c := range []struct {
		name string
		dir  string
		mode os.FileMode
		want string
	}{
		{"maildrop world-writable, no sticky", maildropDirName, 0o777, "sticky"},
		{"maildrop group-writable, no sticky", maildropDirName, 0o770, "sticky"},
		{"incoming writable by others", incomingDirName, 0o733, "forge"},
		{"quarantine writable by group", quarantineDirName, 0o770, "forge"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, state, _ := newSpool(t)
			if err := os.Chmod(filepath.Join(state, "spool", c.dir), c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(state, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open with %s mode %v: err %v, want one mentioning %q", c.dir, c.mode, err, c.want)
			}
		})
	}
}

func TestSubmitPendingReadRemove(t *testing.T) {
	s, state, _ := newSpool(t)
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []string{
		"Subject: one\n\nfirst\n",
		"Subject: two\r\n\r\nsecond with \x00 NUL and 8-bit \xff\r\n",
		"", // empty message
	}
	var ids []string
	for i, m := range msgs {
		env := mailEnv("root@vm", "a@x", "b@y")
		var id string
		if i == 1 {
			env.Source = "smtp"
			env.Helo = "vm"
			env.Remote = "127.0.0.1:4000"
			id, err = s.Submit(env, strings.NewReader(m), 0)
		} else {
			id, err = d.Submit(env, strings.NewReader(m), 0)
		}
		if err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
		if !ValidID(id) {
			t.Fatalf("Submit returned invalid id %q", id)
		}
		ids = append(ids, id)
	}
	es, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(msgs) {
		t.Fatalf("Pending: %d entries, want %d", len(es), len(msgs))
	}
	for i, e := range es {
		if e.ID != ids[i] {
			t.Errorf("Pending[%d].ID = %s, want %s (oldest first)", i, e.ID, ids[i])
		}
		if e.Size != int64(len(msgs[i])) {
			t.Errorf("entry %d: Size %d, want %d", i, e.Size, len(msgs[i]))
		}
		if e.Env.UID != os.Geteuid() {
			t.Errorf("entry %d: UID %d, want %d", i, e.Env.UID, os.Geteuid())
		}
		if e.Env.From != "root@vm" || strings.Join(e.Env.Recipients, ",") != "a@x,b@y" || e.Env.Kind != KindMail {
			t.Errorf("entry %d: envelope %+v", i, e.Env)
		}
		if e.Env.Received.IsZero() || time.Since(e.Env.Received) > time.Minute {
			t.Errorf("entry %d: Received %v", i, e.Env.Received)
		}
		b, err := s.ReadAll(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != msgs[i] {
			t.Errorf("entry %d: body %q, want %q", i, b, msgs[i])
		}
	}
	if es[1].Env.Helo != "vm" || es[1].Env.Remote != "127.0.0.1:4000" || es[1].Env.Source != "smtp" {
		t.Errorf("incoming entry envelope %+v", es[1].Env)
	}
	// List (mailq) sees the same.
	ls, err := List(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != len(es) {
		t.Fatalf("List: %d entries, want %d", len(ls), len(es))
	}
	for _, e := range es {
		if err := s.Remove(e); err != nil {
			t.Fatal(err)
		}
	}
	if es, _ := s.Pending(); len(es) != 0 {
		t.Fatalf("after Remove: %d pending", len(es))
	}
	if n := dirNames(t, s.maildrop); len(n) != 0 {
		t.Fatalf("maildrop not empty: %v", n)
	}
}

func TestEntryFileFormatAndModes(t *testing.T) {
	s, state, _ := newSpool(t)
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.Submit(Envelope{Kind: KindEvent, Source: "notify"}, strings.NewReader(`{"title":"x"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.maildrop, id)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if lines[0] != "HERALD-SPOOL 1" || !strings.HasPrefix(lines[1], `{"kind":"event","source":"notify"`) || lines[2] != `{"title":"x"}` {
		t.Fatalf("entry file:\n%s", b)
	}
	if strings.Contains(lines[1], "UID") || strings.Contains(lines[1], "uid") {
		t.Fatalf("the uid must never be stored in the file: %s", lines[1])
	}
	st, _ := os.Stat(p)
	if st.Mode() != 0o644 {
		t.Errorf("maildrop entry mode %v, want 0644", st.Mode())
	}
	id2, err := s.Submit(mailEnv("a@b"), strings.NewReader("x"), 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(filepath.Join(s.incoming, id2))
	if st.Mode() != 0o600 {
		t.Errorf("incoming entry mode %v, want 0600", st.Mode())
	}
}

func TestSubmitRejectsInvalidKind(t *testing.T) {
	s, _, _ := newSpool(t)
	_, err := s.Submit(Envelope{Kind: "bogus"}, strings.NewReader("x"), 0)
	if err == nil || IsTemporary(err) {
		t.Fatalf("Submit with bad kind: err %v (temporary %v), want a permanent error", err, IsTemporary(err))
	}
}

// TestCrashPaths injects a failure at every step of the durable write: the
// submission fails, nothing is pending and no file is left behind.
func TestCrashPaths(t *testing.T) {
	for _, c := range []struct {
		step safeio.Step
		nth  int // fail the nth call of that step (1-based)
	}{
		{safeio.StepCreate, 1},
		{safeio.StepWrite, 1}, // the envelope
		{safeio.StepWrite, 2}, // the body
		{safeio.StepSync, 1},
		{safeio.StepClose, 1},
		{safeio.StepRename, 1},
		{safeio.StepSyncDir, 1},
	} {
		for _, where := range []string{"maildrop", "incoming"} {
			t.Run(fmt.Sprintf("%s#%d/%s", c.step, c.nth, where), func(t *testing.T) {
				s, state, _ := newSpool(t)
				d, err := OpenDrop(state)
				if err != nil {
					t.Fatal(err)
				}
				calls := 0
				setHook(t, func(step safeio.Step, path string) error {
					if step == c.step {
						calls++
						if calls == c.nth {
							return syscall.EIO
						}
					}
					return nil
				})
				body := strings.NewReader(strings.Repeat("line of mail\n", 1000))
				if where == "maildrop" {
					_, err = d.Submit(mailEnv("a@b", "c@d"), body, 0)
				} else {
					_, err = s.Submit(mailEnv("a@b", "c@d"), body, 0)
				}
				safeio.FailHook = nil
				if err == nil {
					t.Fatalf("Submit succeeded although step %s failed", c.step)
				}
				if calls < c.nth {
					t.Fatalf("step %s called %d times, never failed", c.step, calls)
				}
				if !IsTemporary(err) {
					t.Errorf("IsTemporary(%v) = false, want true", err)
				}
				if es, err := s.Pending(); err != nil || len(es) != 0 {
					t.Fatalf("Pending after failed Submit: %d entries, err %v", len(es), err)
				}
				removed, quarantined, err := s.Recover()
				if err != nil || removed != 0 || quarantined != 0 {
					t.Fatalf("Recover = %d, %d, %v; want nothing to do", removed, quarantined, err)
				}
				for _, dir := range []string{s.maildrop, s.incoming, s.quarantine} {
					if n := dirNames(t, dir); len(n) != 0 {
						t.Fatalf("leftovers in %s: %v", dir, n)
					}
				}
			})
		}
	}
}

// TestDirSyncPermissionFallback: an unprivileged submitter cannot open the
// maildrop (mode 1730) to fsync it; Submit then makes the rename durable
// with syncfs and succeeds.
func TestDirSyncPermissionFallback(t *testing.T) {
	s, state, _ := newSpool(t)
	d, err := OpenDrop(state)
	if err != nil {
		t.Fatal(err)
	}
	setHook(t, func(step safeio.Step, path string) error {
		if step == safeio.StepSyncDir {
			return syscall.EACCES
		}
		return nil
	})
	id, err := d.Submit(mailEnv("a@b", "c@d"), strings.NewReader("hello\n"), 0)
	safeio.FailHook = nil
	if err != nil {
		t.Fatalf("Submit with an unreadable maildrop: %v", err)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 1 || es[0].ID != id {
		t.Fatalf("Pending = %v, %v; want the entry %s", es, err, id)
	}
}

func TestTemporaryErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO, syscall.EACCES} {
		for _, step := range []safeio.Step{safeio.StepCreate, safeio.StepWrite, safeio.StepSync} {
			t.Run(fmt.Sprintf("%v/%s", errno, step), func(t *testing.T) {
				s, _, _ := newSpool(t)
				setHook(t, func(st safeio.Step, path string) error {
					if st == step {
						return errno
					}
					return nil
				})
				_, err := s.Submit(mailEnv("a@b"), strings.NewReader("x"), 0)
				safeio.FailHook = nil
				if err == nil {
					t.Fatal("Submit succeeded")
				}
				if !errors.Is(err, errno) {
					t.Errorf("error %v does not wrap %v", err, errno)
				}
				if !IsTemporary(err) {
					t.Errorf("IsTemporary(%v) = false", err)
				}
				if n := dirNames(t, s.incoming); len(n) != 0 {
					t.Fatalf("leftovers: %v", n)
				}
			})
		}
	}
}

func TestIsTemporary(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrTooLarge, false},
		{fmt.Errorf("x: %w", ErrTooLarge), false},
		{&BodyError{Err: syscall.EIO}, false},
		{&fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, true},
		{&fs.PathError{Op: "open", Path: "/x", Err: syscall.EROFS}, true},
		{syscall.EDQUOT, true},
		{&spoolError{op: "x", err: errors.New("y")}, true},
		{errors.New("something else"), false},
		{syscall.EINVAL, false},
	} {
		if got := IsTemporary(c.err); got != c.want {
			t.Errorf("IsTemporary(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestOpenDropMissingSpoolIsTemporary(t *testing.T) {
	_, err := OpenDrop(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !IsTemporary(err) {
		t.Fatalf("OpenDrop on a missing state dir: %v (temporary %v), want a temporary error", err, IsTemporary(err))
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDrop(f); err == nil {
		t.Fatal("OpenDrop under a regular file succeeded")
	}
}

func TestMaxSize(t *testing.T) {
	for _, c := range []struct {
		size, max int64
		ok        bool
	}{
		{100, 0, true},
		{100, 100, true},
		{101, 100, false},
		{1 << 20, 1000, false},
		{0, 1, true},
	} {
		t.Run(fmt.Sprintf("%d-of-%d", c.size, c.max), func(t *testing.T) {
			s, state, _ := newSpool(t)
			d, err := OpenDrop(state)
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Submit(mailEnv("a@b"), io.LimitReader(zeros{}, c.size), c.max)
			if c.ok {
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				es, _ := s.Pending()
				if len(es) != 1 || es[0].Size != c.size {
					t.Fatalf("Pending %+v", es)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Submit: %v, want ErrTooLarge", err)
			}
			if IsTemporary(err) {
				t.Error("ErrTooLarge must not be temporary")
			}
			if n := dirNames(t, s.maildrop); len(n) != 0 {
				t.Fatalf("leftovers: %v", n)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, syscall.EIO
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	clear(p)
	f.n -= len(p)
	return len(p), nil
}

func TestBodyReadError(t *testing.T) {
	s, _, _ := newSpool(t)
	_, err := s.Submit(mailEnv("a@b"), &failingReader{n: 5000}, 0)
	var be *BodyError
	if !errors.As(err, &be) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Submit with a failing body: %v, want a BodyError wrapping EIO", err)
	}
	if IsTemporary(err) {
		t.Error("a body read error is not a spool failure")
	}
	if n := dirNames(t, s.incoming); len(n) != 0 {
		t.Fatalf("leftovers: %v", n)
	}
}

// countingReader yields n bytes of mail-like text without holding them.
type countingReader struct{ left int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	for i := range p {
		p[i] = 'a' + byte(i%26)
		if i%64 == 63 {
			p[i] = '\n'
		}
	}
	c.left -= int64(len(p))
	return len(p), nil
}

func TestSubmitStreams50MB(t *testing.T) {
	s, _, _ := newSpool(t)
	const size = 50 << 20
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	id, err := s.Submit(mailEnv("a@b"), &countingReader{left: size}, 64<<20)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	// A streaming write allocates a copy buffer, not the message.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("Submit of 50 MB allocated %d bytes: it is not streaming", alloc)
	}
	es, err := s.Pending()
	if err != nil || len(es) != 1 || es[0].ID != id || es[0].Size != size {
		t.Fatalf("Pending = %+v, %v", es, err)
	}
}

func TestIDs(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := NewID(now.Add(time.Duration(i)))
		if !ValidID(id) {
			t.Fatalf("NewID = %q is not ValidID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if id < prev {
			t.Fatalf("ids not sorted by time: %s < %s", id, prev)
		}
		prev = id
	}
	if id := NewID(time.Unix(0, 5)); id[:16] != "0000000000000005" {
		t.Fatalf("NewID pads: %s", id)
	}
	for _, bad := range []string{"", "kick", ".tmp-x", "0000000000000005_12345678", "000000000000000G-12345678", "0000000000000005-1234567", "0000000000000005-ABCDEF12"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

// FuzzReadHeader: the entry parser never panics, and whatever it accepts
// round-trips through the writer's format.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("HERALD-SPOOL 1\n{\"kind\":\"mail\",\"source\":\"sendmail\",\"from\":\"a@b\",\"rcpt\":[\"c@d\"],\"received\":\"2026-11-21T12:00:00Z\"}\nSubject: x\n\nbody\n"))
	f.Add([]byte("HERALD-SPOOL 1\n{\"kind\":\"event\"}\n"))
	f.Add([]byte("HERALD-SPOOL 1\n{\"kind\":\"mail\"\n"))
	f.Add([]byte("HERALD-SPOOL 2\n{}\n"))
	f.Add([]byte("HERALD-SPOOL 1\n{\"kind\":\"mail\",\"body_size\":\"00000000000000000002\"}\nab"))
	f.Add([]byte("HERALD-SPOOL 1\n{\"kind\":\"mail\",\"body_size\":\"-1\"}\nab"))
	f.Add([]byte("garbage"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, off, size, err := readHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if size < -1 {
			t.Fatalf("body size %d", size)
		}
		if off <= 0 || off > int64(len(data)) {
			t.Fatalf("offset %d out of range for %d bytes", off, len(data))
		}
		if env.Kind != KindMail && env.Kind != KindEvent {
			t.Fatalf("accepted kind %q", env.Kind)
		}
		if !bytes.HasPrefix(data, []byte(magic)) || data[off-1] != '\n' {
			t.Fatalf("accepted header without magic or newline: %q", data[:off])
		}
	})
}

// TestTruncatedBodyIsDetected: an entry records its body's length, so a body
// cut short (or grown) after the commit is quarantined with the reason,
// never delivered; entries written before the length was recorded still
// load as they are.
func TestTruncatedBodyIsDetected(t *testing.T) {
	const msg = "Subject: cut\n\nthe end of this body goes missing\n"
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string // "" = accepted
	}{
		{"intact", func(b []byte) []byte { return b }, ""},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }, "truncated or damaged"},
		{"cut to the envelope", func(b []byte) []byte { return b[:bytes.IndexByte(b[len(magic):], '\n')+len(magic)+1] }, "truncated or damaged"},
		{"grown", func(b []byte) []byte { return append(b, "junk"...) }, "truncated or damaged"},
		{"old format without a length", func(b []byte) []byte {
			return []byte("HERALD-SPOOL 1\n{\"kind\":\"mail\",\"source\":\"smtp\",\"from\":\"a@b\",\"rcpt\":[\"c@d\"],\"received\":\"2026-11-21T12:00:00Z\"}\n" + msg[:20])
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, lb := newSpool(t)
			id, err := s.Submit(mailEnv("a@b", "c@d"), strings.NewReader(msg), 0)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(s.incoming, id)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(fmt.Sprintf(`"body_size":"%020d"}`, len(msg)))) {
				t.Fatalf("the envelope does not record the body length:\n%s", b)
			}
			damaged := tc.damage(b)
			if err := os.WriteFile(p, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			es, err := s.Pending()
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(es) != 1 {
					t.Fatalf("Pending = %d entries, want the entry", len(es))
				}
				body, err := s.ReadAll(es[0])
				if err != nil || !bytes.HasSuffix(damaged, body) {
					t.Fatalf("body %q, %v", body, err)
				}
				return
			}
			if len(es) != 0 {
				t.Fatalf("a damaged entry was accepted: %+v", es)
			}
			if q := dirNames(t, s.quarantine); len(q) != 1 {
				t.Fatalf("quarantine holds %v", q)
			}
			if !strings.Contains(lb.String(), tc.want) {
				t.Errorf("log does not say why:\n%s", lb)
			}
		})
	}
}
