package mailconv

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

var update = flag.Bool("update", false, "rewrite the golden NAME.json files in testdata/mails")

// mailsDir holds the sample mails shared with the classifier packages.
const mailsDir = "../../testdata/mails"

// goldenOptions are the fixed options the golden files are made with.
func goldenOptions() Options {
	return Options{ID: "test", Now: time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC), Hostname: "pve1"}
}

func sampleMails(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(mailsDir, "*.eml"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) < 20 {
		tb.Fatalf("found only %d sample mails in %s", len(files), mailsDir)
	}
	return files
}

func eventJSON(tb testing.TB, ev *event.Event) []byte {
	tb.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		tb.Fatalf("marshal event: %v", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		tb.Fatalf("indent event JSON: %v", err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// TestGolden converts every sample mail and compares the event JSON with
// NAME.json. Run with -update to rewrite them, then review the diff.
func TestGolden(t *testing.T) {
	for _, file := range sampleMails(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := eventJSON(t, Convert(raw, goldenOptions()))
			golden := strings.TrimSuffix(file, ".eml") + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/mailconv -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("event for %s differs from %s\n--- got\n%s\n--- want\n%s", file, golden, got, want)
			}
		})
	}
}

// TestSamples states what matters about each sample, so a golden file
// rewritten with -update cannot silently accept a regression.
func TestSamples(t *testing.T) {
	tests := []struct {
		file      string
		title     string
		fields    map[string]string // expected values; "" value means: must be absent
		contains  []string
		lacks     []string
		bodyEnd   string // the body's suffix, when it matters
		emptyBody bool
	}{
		{file: "cron.eml", title: "Cron <root@pve1> /usr/local/sbin/check-replication.sh",
			fields:   map[string]string{"from": "root (Cron Daemon)", "to": "root", "message-id": ""},
			contains: []string{"Prüfe Replikation für 3 Gäste …\n", "state OK\n.\njob 105-0"},
			bodyEnd:  "WARNUNG: 1 Job(s) fehlgeschlagen"},
		{file: "bacula-backup-ok.eml", title: "Bacula: Backup OK of client-fd Incremental",
			fields:   map[string]string{"from": "(Bacula) <bacula@pve1.example.org>", "message-id": "<2214-1795302310@pve1>"},
			contains: []string{"Datenbank-Dump für „kunden“ erstellt", "  Termination:            Backup OK\n"},
			lacks:    []string{"\r"},
			bodyEnd:  "End auto prune."},
		{file: "smartd.eml", title: "SMART error (CurrentPendingSector) detected on host: pve1",
			contains: []string{"Device: /dev/sda [SAT], 8 Currently unreadable (pending) sectors"}},
		{file: "mdadm-fail.eml", title: "Fail event on /dev/md0:pve1",
			fields:   map[string]string{"from": "mdadm monitoring <root@pve1>", "subject": "Fail event on /dev/md0:pve1"},
			contains: []string{"md0 : active raid1 sdb1[1](F) sda1[0]\n"}},
		{file: "unattended-upgrades.eml", title: "unattended-upgrades result for pve1: SUCCESS",
			contains: []string{"Current default time zone: 'Europe/Zürich'",
				"origin=Debian,codename=bookworm,label=Debian, origin=Debian,codename=bookworm,label=Debian-Security, origin=",
				" libssl3 openssl tzdata \n"},
			lacks: []string{"=3D", "=\n"}},
		{file: "logwatch.eml", title: "Logwatch for pve1 (Linux)",
			contains: []string{"rpool/data                    3.5T  3.1T  412G  89% /rpool/data"}},
		{file: "vzdump-ok.eml", title: "vzdump backup status (pve1.example.org): backup successful",
			fields:   map[string]string{"from": "Proxmox VE <root@pve1.example.org>"},
			contains: []string{"Details\n=======\nVMID    Name"},
			lacks:    []string{"<table", "This is a multi-part message", "Attachments:"}},
		{file: "truenas-html-only.eml", title: "TrueNAS nas1.example.org: 2 new alerts",
			contains: []string{"*CRITICAL* | Pool tank state is DEGRADED", "WARNING | Device /dev/sdc is causing slow I/O on pool tank & scrub",
				"( https://nas1.example.org/ui/system/alert-settings )", "* Pool tank state is DEGRADED\n"},
			lacks: []string{"<", "font-family", "&amp;", "=3D", "\r"}},
		{file: "rundeck-html-alternative.eml", title: "[Rundeck] FAILURE: ops/nightly-db-dump #5821",
			contains: []string{"Failed nodes: | db1, db2", "password authentication failed for user \"backup\""},
			lacks:    []string{"<td>", "PGh0bWw"}},
		{file: "latin1.eml", title: "Sicherung erfolgreich: Überprüfung abgeschlossen",
			fields:   map[string]string{"from": "Sicherungsskript Büro <backup@fileserver.example.de>", "to": "Jörg Müller <joerg@example.de>"},
			contains: []string{"Hallo Jörg,", "»fileserver«", "Größe:", "Grüße"}},
		{file: "base64-utf8.eml", title: "[nas2] Sauvegarde terminée ✔",
			contains: []string{"« nas2 → s3://backups-paris » est terminée ✔", "— rclone-wrapper"}},
		{file: "pdf-attachment.eml", title: "Monthly UPS report for pve1",
			contains: []string{"Power failures:      2"},
			bodyEnd:  "The full report is attached.\n\nAttachments:\n- ups-report-2026-10.pdf (application/pdf, 606 bytes)"},
		{file: "mbox-forward-zed.eml", title: "ZFS scrub_finish event for rpool on pve1",
			fields:   map[string]string{"from": "root <root@pve1.example.org>", "to": "root@pve1.example.org", "message-id": "<20261115013619.5C1D2A0F3B@pve1.example.org>"},
			contains: []string{"ZFS has finished a scrub:", "errors: No known data errors"},
			lacks:    []string{"Delivered-To", "From root@"}},
		{file: "broken-truncated-multipart.eml", title: "rsync backup finished with errors",
			contains: []string{"exit code 23 (partial transfer)", "Attachments:\n- rsync.log (application/octet-stream, "}},
		{file: "broken-unknown-charset.eml", title: "Café-Automat Störung",
			contains: []string{"Automat 3 meldet Störung: Münzprüfer defekt.", "4°C"}},
		{file: "broken-nul.eml", title: "Cron <root@pve1> /usr/local/bin/dump-status",
			contains: []string{"status: ok", "ELF"}, lacks: []string{"\x00"}},
		{file: "broken-mixed-line-endings.eml", title: "Cron <root@pve1> rsync --progress /srv /mnt/backup",
			contains: []string{"sending incremental file list\nsrv/data/big.img\n", "0:00:00\n 104,857,600", "bytes/sec\ntotal size"},
			lacks:    []string{"\r"}},
		{file: "broken-cr-only.eml", title: "Scan job 42 finished",
			fields:  map[string]string{"from": "scanner@example.org"},
			bodyEnd: "Scan job 42 finished.\nPages: 12\nDestination: /srv/scans/2026-11-15"},
		{file: "broken-no-headers.eml", title: "",
			fields:   map[string]string{"from": "", "to": "", "subject": "", "message-id": ""},
			contains: []string{"WARNING: disk usage on /var is 93%\n/var/log is 14G"}},
		{file: "header-only.eml", title: "Cron <root@pve1> /usr/local/bin/touch-heartbeat", emptyBody: true},
		{file: "broken-bad-boundary.eml", title: "Service check CRITICAL: nginx on web1",
			contains: []string{"nginx on web1 is CRITICAL: connect to port 443 failed"}},
		{file: "broken-nested-unclosed.eml", title: "Certificate check: 1 certificate expires soon",
			contains: []string{"mail.example.org: certificate expires in 6 days (2026-11-21)", "Attachments:\n- certs.csv (text/csv, 41 bytes)"},
			lacks:    []string{"<p>", "--inner", "This is a multi-part"}},
		{file: "empty.eml", title: "", emptyBody: true,
			fields: map[string]string{"from": "", "to": "", "subject": "", "message-id": ""}},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(mailsDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			keep := bytes.Clone(raw)
			ev := Convert(raw, goldenOptions())
			if !bytes.Equal(raw, keep) {
				t.Fatal("Convert modified its input")
			}
			if !bytes.Equal(ev.Mail.Raw, keep) {
				t.Error("ev.Mail.Raw is not the raw message")
			}
			if ev.Title != tc.title {
				t.Errorf("title = %q, want %q", ev.Title, tc.title)
			}
			if ev.Severity != event.Unknown || ev.Fields["type"] != "system-mail" || ev.Fields["hostname"] != "pve1" {
				t.Errorf("defaults wrong: severity %v, fields %v", ev.Severity, ev.Fields)
			}
			for k, want := range tc.fields {
				got, ok := ev.Fields[k]
				if want == "" && ok {
					t.Errorf("field %s = %q, want it absent", k, got)
				}
				if want != "" && got != want {
					t.Errorf("field %s = %q, want %q", k, got, want)
				}
			}
			for _, s := range tc.contains {
				if !strings.Contains(ev.Body, s) {
					t.Errorf("body lacks %q\nbody:\n%s", s, ev.Body)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(ev.Body, s) || strings.Contains(ev.Title, s) {
					t.Errorf("title or body contains %q\nbody:\n%s", s, ev.Body)
				}
			}
			if tc.bodyEnd != "" && !strings.HasSuffix(ev.Body, tc.bodyEnd) {
				t.Errorf("body does not end with %q\nbody:\n%s", tc.bodyEnd, ev.Body)
			}
			if tc.emptyBody != (ev.Body == "") {
				t.Errorf("body = %q, want empty: %v", ev.Body, tc.emptyBody)
			}
			if ev.Body != strings.TrimRight(ev.Body, " \t\n") {
				t.Errorf("body has trailing whitespace: %q", ev.Body)
			}
		})
	}
	for _, f := range sampleMails(t) {
		if !seen[filepath.Base(f)] {
			t.Errorf("sample %s has no entry in TestSamples", filepath.Base(f))
		}
	}
}
