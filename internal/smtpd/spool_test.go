package smtpd

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"herald/internal/safeio"
	"herald/internal/spool"
)

// Both sides of the real spool are Submitters.
var (
	_ Submitter = (*spool.Spool)(nil)
	_ Submitter = (*spool.Drop)(nil)
)

// TestRealSpool runs the listener against the real spool: 250 means the
// entry is committed, a failure at any durable-write step answers 451 and
// leaves nothing, an oversize message leaves nothing.
func TestRealSpool(t *testing.T) {
	state := t.TempDir()
	sp, err := spool.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, sp, Options{MaxMessageSize: 4096}, "127.0.0.1:0")
	pending := func() []spool.Entry {
		t.Helper()
		es, err := sp.Pending()
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	noTemps := func() {
		t.Helper()
		names, err := os.ReadDir(filepath.Join(state, "spool", "incoming"))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasPrefix(n.Name(), safeio.TempPrefix) {
				t.Fatalf("temporary file %s left behind", n.Name())
			}
		}
	}

	c := greet(t, ts.addr)
	id := c.mail("a@b", []string{"root"}, "Subject: real\r\n\r\nbody\r\n")
	es := pending()
	if len(es) != 1 || es[0].ID != id || es[0].Env.Source != "smtp" || es[0].Env.From != "a@b" ||
		!slices.Equal(es[0].Env.Recipients, []string{"root@herald.test"}) || es[0].Env.Helo != "client.test" {
		t.Fatalf("spool holds %+v, want entry %s", es, id)
	}
	body, err := sp.ReadAll(es[0])
	if err != nil || string(body) != "Subject: real\r\n\r\nbody\r\n" {
		t.Fatalf("entry body %q, %v", body, err)
	}
	if err := sp.Remove(es[0]); err != nil {
		t.Fatal(err)
	}

	// Oversize: 552, nothing on disk.
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	c.send(strings.Repeat("x", 5000) + "\r\n.\r\n")
	c.expect(552, "5.3.4")
	if es := pending(); len(es) != 0 {
		t.Fatalf("oversize message spooled: %+v", es)
	}
	noTemps()

	// A failure at each step of the durable write: 451, nothing left.
	for _, step := range []safeio.Step{safeio.StepCreate, safeio.StepWrite, safeio.StepSync, safeio.StepRename, safeio.StepSyncDir} {
		t.Run(string(step), func(t *testing.T) {
			safeio.FailHook = func(s safeio.Step, _ string) error {
				if s == step {
					return errors.New("injected failure")
				}
				return nil
			}
			defer func() { safeio.FailHook = nil }()
			c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
			c.expect(250, "")
			c.expect(250, "")
			c.expect(354, "")
			c.send("Subject: doomed\r\n\r\nx\r\n.\r\n")
			c.expect(451, "4.3.0 Requested action aborted: local problem in processing")
			if es := pending(); len(es) != 0 {
				t.Fatalf("failed message spooled: %+v", es)
			}
			noTemps()
			if !strings.Contains(ts.log.String(), "injected failure") {
				t.Errorf("log lacks the failure:\n%s", ts.log)
			}
		})
	}
	// And the same session delivers once the spool works again.
	id = c.mail("a@b", []string{"c@d"}, "recovered\r\n")
	if es := pending(); len(es) != 1 || es[0].ID != id {
		t.Fatalf("spool holds %+v, want %s", es, id)
	}
}
