package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/target"
)

// The test binary doubles as a second writer process: with these variables
// set it appends events and exits instead of running tests.
const (
	helperPathEnv  = "HERALD_FILE_TEST_WRITER_PATH"
	helperCountEnv = "HERALD_FILE_TEST_WRITER_COUNT"
)

func TestMain(m *testing.M) {
	if p := os.Getenv(helperPathEnv); p != "" {
		n, _ := strconv.Atoi(os.Getenv(helperCountEnv))
		tg := New(p)
		for i := range n {
			if err := tg.Deliver(context.Background(), testEvent(fmt.Sprintf("proc-%d", i), 4096)); err != nil {
				fmt.Fprintln(os.Stderr, "helper writer:", err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testEvent(id string, bodySize int) *event.Event {
	return &event.Event{
		ID:        id,
		Timestamp: time.Date(2025, 5, 23, 11, 59, 32, 0, time.UTC),
		Severity:  event.Warning,
		Title:     "Backup of vm 100 \"web\" failed",
		Body:      strings.Repeat("line with ünïcode and \"quotes\"\n", bodySize/32+1)[:bodySize],
		Fields:    map[string]string{"type": "vzdump", "hostname": "pve1"},
	}
}

// readLines returns the file's lines without their '\n'; the file must end
// in '\n'.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end in a newline", path)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestDeliverWritesEventJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "events.jsonl")
	tg := New(path)
	ev := testEvent("ev-1", 40)
	for range 2 {
		if err := tg.Deliver(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 || lines[0] != string(want) || lines[1] != string(want) {
		t.Fatalf("file holds %q, want two lines of %s", lines, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v, want 0640", st.Mode().Perm())
	}
	dst, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o750 {
		t.Errorf("dir mode %v, want 0750", dst.Mode().Perm())
	}
}

func TestConcurrentWritersNeverInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	const goroutines, perGoroutine, perProcess = 8, 25, 100

	// A second process appends at the same time.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperPathEnv+"="+path, helperCountEnv+"="+strconv.Itoa(perProcess))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	tg := New(path)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perGoroutine)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				// Bodies of varying size, some over a page, to give a torn
				// write every chance to show.
				ev := testEvent(fmt.Sprintf("g%d-%d", g, i), 100+(g*997+i*131)%9000)
				if err := tg.Deliver(t.Context(), ev); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("writer process: %v: %s", err, stderr.String())
	}

	seen := map[string]int{}
	for i, l := range readLines(t, path) {
		var ev event.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %d is not valid JSON (interleaved?): %v: %.120q", i+1, err, l)
		}
		seen[ev.ID]++
	}
	if want := goroutines*perGoroutine + perProcess; len(seen) != want {
		t.Errorf("%d distinct events, want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s written %d times", id, n)
		}
	}
}

func TestPartialLastLineIsRepaired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	good, err := json.Marshal(testEvent("before", 10))
	if err != nil {
		t.Fatal(err)
	}
	// A writer crashed mid-line: the file ends without '\n'.
	torn := string(good) + "\n" + `{"id":"torn","timest`
	if err := os.WriteFile(path, []byte(torn), 0o640); err != nil {
		t.Fatal(err)
	}
	tg := New(path)
	ev := testEvent("after", 10)
	if err := tg.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3: %q", len(lines), lines)
	}
	if lines[1] != `{"id":"torn","timest` {
		t.Errorf("torn line changed: %q", lines[1])
	}
	var got event.Event
	if err := json.Unmarshal([]byte(lines[2]), &got); err != nil || got.ID != "after" {
		t.Errorf("appended line %q: %v", lines[2], err)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{"before", true}, {"after", true}, {"torn", false}, {"missing", false}} {
		ok, err := tg.Delivered(t.Context(), &event.Event{ID: tc.id})
		if err != nil {
			t.Fatal(err)
		}
		if ok != tc.want {
			t.Errorf("Delivered(%s) = %v, want %v", tc.id, ok, tc.want)
		}
	}
}

func TestDelivered(t *testing.T) {
	dir := t.TempDir()
	tg := New(filepath.Join(dir, "events.jsonl"))
	ev := testEvent("8d1f6a52-0e1c-4b7e-9d55-0c2b1c3d4e5f", 70<<10) // a line longer than the reader's buffer
	if ok, err := tg.Delivered(t.Context(), ev); err != nil || ok {
		t.Fatalf("missing file: Delivered = %v, %v; want false, nil", ok, err)
	}
	// An event whose body mentions the ID is not the event itself.
	other := testEvent("other", 10)
	other.Body = `delivery of "8d1f6a52-0e1c-4b7e-9d55-0c2b1c3d4e5f" failed`
	other.Fields["event"] = ev.ID
	if err := tg.Deliver(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	if ok, err := tg.Delivered(t.Context(), ev); err != nil || ok {
		t.Fatalf("before delivery: Delivered = %v, %v; want false, nil", ok, err)
	}
	if err := tg.Deliver(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if ok, err := tg.Delivered(t.Context(), ev); err != nil || !ok {
		t.Fatalf("after delivery: Delivered = %v, %v; want true, nil", ok, err)
	}
}

func TestDeliverWaitsForLockUntilDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	holder, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	fd := int(holder.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	tg := New(path)

	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	err = tg.Deliver(ctx, testEvent("x", 10))
	if err == nil || !target.IsTemporary(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver under a held lock = %v, want a temporary deadline error", err)
	}

	// Released while a writer waits: the writer proceeds.
	done := make(chan error, 1)
	go func() { done <- tg.Deliver(t.Context(), testEvent("y", 10)) }()
	// The delay only gives the writer time to start waiting; the test
	// passes either way, so it is not synchronisation.
	time.AfterFunc(50*time.Millisecond, func() { _ = unix.Flock(fd, unix.LOCK_UN) })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver did not proceed within 10s after the lock was released")
	}
	if lines := readLines(t, path); len(lines) != 1 || !strings.Contains(lines[0], `"id":"y"`) {
		t.Fatalf("file holds %q, want only event y", lines)
	}
}

func TestDeliverErrorIsTemporary(t *testing.T) {
	dir := t.TempDir()
	// The path is a directory: opening it for append fails.
	err := New(dir).Deliver(t.Context(), testEvent("x", 10))
	if err == nil || !target.IsTemporary(err) {
		t.Fatalf("Deliver to a directory = %v, want a temporary error", err)
	}
}

func FuzzContainsID(f *testing.F) {
	f.Add([]byte(`{"id":"a"}`+"\n"), "a")
	f.Add([]byte(`{"id":"a"`), "a")
	f.Add([]byte("{\"x\":\"\\\"a\\\"\"}\n{\"id\":\"b\"}\n"), "a")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		ok, err := containsID(bytes.NewReader(data), id)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		// A match must be a complete line whose JSON id is exactly id.
		found := false
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, len(data)+1)
		for sc.Scan() {
			var v struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(sc.Bytes(), &v) == nil && v.ID == id {
				found = true
			}
		}
		if !found {
			t.Fatalf("containsID(%q, %q) = true without such a line", data, id)
		}
	})
}

// BenchmarkFileTarget measures durable appends (each one fsynced) of a
// typical 1 KiB event.
func BenchmarkFileTarget(b *testing.B) {
	tg := New(filepath.Join(b.TempDir(), "events.jsonl"))
	ev := testEvent("bench", 1024)
	b.ResetTimer()
	for b.Loop() {
		if err := tg.Deliver(b.Context(), ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
