package safeio

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestJournalSIGKILL kills a real process (SIGKILL) in the middle of a burst
// of journaled writes and removals from 8 goroutines, with small segments so
// that checkpoints run during the burst, then replays: every acknowledged
// write is there, every acknowledged removal stays done, and the files
// each writer rewrites hold its last acknowledged value or the next one.
func TestJournalSIGKILL(t *testing.T) {
	for round := range 3 {
		root := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestJournalHelperWriter$")
		cmd.Env = append(os.Environ(), "HERALD_JOURNAL_HELPER_ROOT="+root)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[int]int{} // writer → last acknowledged step
		sc := bufio.NewScanner(out)
		total := 0
		deadline := time.After(30 * time.Second)
		lines := make(chan string)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
	read:
		for total < 300+round*200 {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				var g, n int
				if _, err := fmt.Sscanf(l, "ack %d %d", &g, &n); err != nil {
					continue // the test framework's own output
				}
				acked[g] = n
				total++
			case <-deadline:
				t.Fatalf("round %d: only %d acks in 30 s", round, total)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for l := range lines { // acks printed before the kill count too
			var g, n int
			if _, err := fmt.Sscanf(l, "ack %d %d", &g, &n); err == nil {
				acked[g] = n
				total++
			}
		}
		_ = cmd.Wait()
		j, err := OpenJournal(root, JournalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for g, m := range acked {
			for k := 0; k <= m; k++ {
				got := readOrAbsent(t, filepath.Join(root, fmt.Sprintf("w%d-%d", g, k)))
				switch {
				case k == m-2 && (got == "<absent>" || got == strconv.Itoa(k)):
					// Removed by step m+1, which may have committed
					// without its acknowledgement being read.
				case k > m-3 && got != strconv.Itoa(k):
					t.Fatalf("round %d: acknowledged w%d-%d holds %q", round, g, k, got)
				case k <= m-3 && got != "<absent>":
					t.Fatalf("round %d: w%d-%d, removed and acknowledged, came back: %q", round, g, k, got)
				}
			}
			last, _ := strconv.Atoi(readOrAbsent(t, filepath.Join(root, fmt.Sprintf("last%d", g))))
			if last != m && last != m+1 {
				t.Fatalf("round %d: last%d = %d, acknowledged %d", round, g, last, m)
			}
		}
		replayed := j.Stats().Replayed
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged calls before SIGKILL, all there (%d ops replayed)", round, total, replayed)
	}
}

// TestJournalHelperWriter is the process TestJournalSIGKILL kills.
func TestJournalHelperWriter(t *testing.T) {
	root := os.Getenv("HERALD_JOURNAL_HELPER_ROOT")
	if root == "" {
		return // only meaningful as the helper process
	}
	j, err := OpenJournal(root, JournalOptions{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				ops := []Op{
					WriteOp(filepath.Join(root, fmt.Sprintf("w%d-%d", g, n)), []byte(strconv.Itoa(n)), 0o600),
					InPlaceOp(filepath.Join(root, fmt.Sprintf("last%d", g)), []byte(strconv.Itoa(n)), 0o600),
				}
				if n >= 3 {
					ops = append(ops, RemoveOp(filepath.Join(root, fmt.Sprintf("w%d-%d", g, n-3))))
				}
				if err := j.Apply(ops...); err != nil {
					panic(err)
				}
				mu.Lock()
				fmt.Printf("ack %d %d\n", g, n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
