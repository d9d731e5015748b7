package e2e

import (
	"errors"
	"fmt"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFullAndReadOnlySpool puts the state directory on a real 4 MB tmpfs,
// fills it, then remounts it read-only: the shim exits 75 and SMTP answers
// 452 (below the free-space reserve) and 451 (read-only), the daemon keeps running, and every message acknowledged before
// still arrives once space is back.
func TestFullAndReadOnlySpool(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs and must run as root (CI does)")
	}
	mount := needTool(t, "mount")
	umount := needTool(t, "umount")
	events := t.TempDir() // the file target writes outside the small disk
	d := newDaemon(t, "file: events\n\tpath "+filepath.Join(events, "events.jsonl")+"\n\nmatcher: default-matcher\n\ttarget events\n")
	d.eventsFile = filepath.Join(events, "events.jsonl")
	if err := os.MkdirAll(d.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", d.stateDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		d.stop()
		if out, err := exec.Command(umount, "-l", d.stateDir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	// A reserve that fits the small disk: the default (64M) would refuse
	// from the start.
	d.appendConfig("spool-min-free 1M\n")
	d.start()
	addr := fmt.Sprintf("127.0.0.1:%d", d.port)
	send := func(subj string) error {
		return smtp.SendMail(addr, nil, "a@example.org", []string{"root@localhost"},
			[]byte("Subject: "+subj+"\r\n\r\n"+strings.Repeat("x", 2000)+"\r\n"))
	}
	shim := func(subj string) int {
		_, code := d.runCode("Subject: "+subj+"\n\nbody\n", nil, d.shim, "root")
		return code
	}
	wantTemp := func(err error, what string, code int) {
		t.Helper()
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != code {
			t.Fatalf("%s: SMTP answered %v, want %d", what, err, code)
		}
	}

	// Acknowledged before trouble.
	if err := send("before-1"); err != nil {
		t.Fatal(err)
	}
	if code := shim("before-2"); code != 0 {
		t.Fatalf("shim exit %d", code)
	}
	d.waitEvent("before-1")
	d.waitEvent("before-2")

	// Full: fill the tmpfs to the last byte.
	filler := filepath.Join(d.stateDir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	// Below the reserve: 452 4.3.1, as Postfix answers under queue_minfree.
	wantTemp(send("while-full"), "disk full", 452)
	if code := shim("while-full-shim"); code != 75 {
		t.Fatalf("shim on a full disk: exit %d, want 75", code)
	}

	// Read-only.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// The queue keeps a lock file open for writing, so the whole tmpfs
	// cannot go read-only under a running daemon: make the spool a
	// read-only bind mount instead, which is what a submitter meets.
	spoolDir := filepath.Join(d.stateDir, "spool")
	for _, args := range [][]string{{"--bind", spoolDir, spoolDir}, {"-o", "remount,bind,ro", spoolDir}} {
		if out, err := exec.Command(mount, args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v\n%s", args, err, out)
		}
	}
	wantTemp(send("while-ro"), "read-only spool", 451)
	if code := shim("while-ro-shim"); code != 75 {
		t.Fatalf("shim on a read-only spool: exit %d, want 75", code)
	}
	if out, err := exec.Command(umount, spoolDir).CombinedOutput(); err != nil {
		t.Fatalf("umount the read-only bind: %v\n%s", err, out)
	}

	// Space is back: the daemon never stopped and takes mail again.
	if err := send("after"); err != nil {
		t.Fatalf("after the disk recovered: %v", err)
	}
	d.waitEvent("after")
	time.Sleep(200 * time.Millisecond)
	count := map[string]int{}
	for _, ev := range d.events() {
		count[ev.Title]++
	}
	for _, s := range []string{"before-1", "before-2", "after"} {
		if count[s] != 1 {
			t.Errorf("%s arrived %d times", s, count[s])
		}
	}
	for _, s := range []string{"while-full", "while-full-shim", "while-ro", "while-ro-shim"} {
		if count[s] != 0 {
			t.Errorf("%s was refused but arrived %d times", s, count[s])
		}
	}
}
