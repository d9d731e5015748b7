package classify

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"herald/internal/config"
	"herald/internal/event"
	"herald/internal/mailconv"
)

var update = flag.Bool("update", false, "rewrite the golden NAME.json files under testdata/classify")

const (
	samplesDir = "../../testdata/classify" // this package's samples and goldens
	mailsDir   = "../../testdata/mails"    // mailconv's samples, classified here too
)

func options() mailconv.Options {
	chain := Chain(nil, nil)
	return mailconv.Options{ID: "test", Now: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC), Hostname: "herald-host", Classifiers: chain}
}

// want is what matters about one sample's event: its classifier, type,
// severity and the contract's fields (hostname included). Fields not
// listed must be absent, apart from the mail's own from/to/subject/
// message-id.
type want struct {
	classifier string
	typ        string
	sev        event.Severity
	fields     map[string]string
}

// none is the event of a mail no classifier recognises.
func none(host string) want {
	return want{"", "system-mail", event.Unknown, map[string]string{"hostname": host}}
}

var expectations = map[string]want{
	// Bacula: real bsmtp, reports in Bacula's format (README).
	"bacula-backup-error.eml": {"bacula", "bacula", event.Error, map[string]string{"hostname": "backup",
		"job-type": "Backup", "job-status": "Fatal Error", "client": "web1-fd", "level": "Full", "job": "web1-fd-backup", "job-id": "2291"}},
	"bacula-backup-warnings.eml": {"bacula", "bacula", event.Warning, map[string]string{"hostname": "backup",
		"job-type": "Backup", "job-status": "OK -- with warnings", "client": "fileserver-fd", "level": "Differential", "job": "fileserver-fd-home", "job-id": "2292"}},
	"bacula-restore-canceled.eml": {"bacula", "bacula", event.Warning, map[string]string{"hostname": "backup",
		"job-type": "Restore", "job-status": "Canceled", "client": "web1-fd", "job": "RestoreFiles", "job-id": "2300"}},
	"bacula-verify-custom-subject.eml": {"bacula", "bacula", event.Warning, map[string]string{"hostname": "backup",
		"job-type": "Verify", "job-status": "Differences", "client": "fileserver-fd", "level": "VolumeToCatalog", "job": "VerifyHome", "job-id": "2301"}},
	// A real Bacula 9.6.7 director (Debian's configuration) running jobs.
	"bacula-director-backup-ok.eml": {"bacula", "bacula", event.Info, map[string]string{"hostname": "vm",
		"job-type": "Backup", "job-status": "OK", "client": "vm-fd", "level": "Full", "job": "BackupClient1", "job-id": "1"}},
	"bacula-director-backup-warnings.eml": {"bacula", "bacula", event.Warning, map[string]string{"hostname": "vm",
		"job-type": "Backup", "job-status": "OK -- with warnings", "client": "vm-fd", "level": "Full", "job": "WarnJob", "job-id": "2"}},
	"bacula-director-backup-fatal.eml": {"bacula", "bacula", event.Error, map[string]string{"hostname": "vm",
		"job-type": "Backup", "job-status": "Fatal Error", "client": "vm-fd", "level": "Full", "job": "FailJob", "job-id": "3"}},
	"bacula-director-restore-ok.eml": {"bacula", "bacula", event.Info, map[string]string{"hostname": "vm",
		"job-type": "Restore", "job-status": "OK", "client": "vm-fd", "job": "RestoreFiles", "job-id": "4"}},
	"mails/bacula-backup-ok.eml": {"bacula", "bacula", event.Info, map[string]string{"hostname": "pve1",
		"job-type": "Backup", "job-status": "OK", "client": "client-fd", "level": "Incremental", "job": "client-fd-backup", "job-id": "1234"}},
	// smartd: smartd_warning.sh with smartd's environment.
	"smartd-emailtest.eml":      {"smartd", "smartd", event.Notice, map[string]string{"hostname": "pve1", "device": "/dev/sda", "failtype": "EmailTest"}},
	"smartd-temperature.eml":    {"smartd", "smartd", event.Warning, map[string]string{"hostname": "pve1", "device": "/dev/sda", "failtype": "Temperature"}},
	"smartd-pending-sector.eml": {"smartd", "smartd", event.Error, map[string]string{"hostname": "pve1", "device": "/dev/sda", "failtype": "CurrentPendingSector"}},
	"smartd-health-nvme.eml":    {"smartd", "smartd", event.Error, map[string]string{"hostname": "nas2", "device": "/dev/nvme0", "failtype": "Health"}},
	"mails/smartd.eml":          {"smartd", "smartd", event.Error, map[string]string{"hostname": "pve1", "device": "/dev/sda", "failtype": "CurrentPendingSector"}},
	// cron: Debian cron running real jobs.
	"cron-ok.eml": {"cron", "cron", event.Info, map[string]string{"hostname": "vm", "user": "root",
		"command": `echo "nightly rsync: 42 files transferred"; echo "done"`, "job-status": "ok"}},
	"cron-failed.eml": {"cron", "cron", event.Error, map[string]string{"hostname": "vm", "user": "root",
		"command": `test -d /srv/backup-target || { echo "backup target /srv/backup-target missing"; exit 2; }`, "job-status": "failed"}},
	"cron-failed-nobody.eml": {"cron", "cron", event.Error, map[string]string{"hostname": "vm", "user": "nobody",
		"command": `echo "rsync: connection unexpectedly closed"; echo "rsync error: error in rsync protocol data stream (code 12)" >&2; exit 12`, "job-status": "failed"}},
	"mails/cron.eml":                       {"cron", "cron", event.Info, map[string]string{"hostname": "pve1", "user": "root", "command": "/usr/local/sbin/check-replication.sh", "job-status": "ok"}},
	"mails/header-only.eml":                {"cron", "cron", event.Info, map[string]string{"hostname": "pve1", "user": "root", "command": "/usr/local/bin/touch-heartbeat", "job-status": "ok"}},
	"mails/broken-nul.eml":                 {"cron", "cron", event.Info, map[string]string{"hostname": "pve1", "user": "root", "command": "/usr/local/bin/dump-status", "job-status": "ok"}},
	"mails/broken-mixed-line-endings.eml":  none("herald-host"), // a cron subject without cron's headers
	"apt-unattended-success.eml":           {"unattended-upgrades", "apt", event.Info, map[string]string{"hostname": "pve1", "result": "SUCCESS"}},
	"apt-unattended-failure.eml":           {"unattended-upgrades", "apt", event.Error, map[string]string{"hostname": "pbs1", "result": "FAILURE"}},
	"mails/unattended-upgrades.eml":        {"unattended-upgrades", "apt", event.Info, map[string]string{"hostname": "pve1", "result": "SUCCESS"}},
	"apticron-updates.eml":                 {"apticron", "package-updates", event.Info, map[string]string{"hostname": "pve1"}},
	"apticron-no-updates.eml":              {"apticron", "package-updates", event.Info, map[string]string{"hostname": "backup2"}},
	"logwatch-pve1.eml":                    {"logwatch", "logwatch", event.Info, map[string]string{"hostname": "pve1"}},
	"logwatch-backup2.eml":                 {"logwatch", "logwatch", event.Info, map[string]string{"hostname": "backup2"}},
	"mails/logwatch.eml":                   {"logwatch", "logwatch", event.Info, map[string]string{"hostname": "pve1"}},
	"mdadm-degraded.eml":                   {"mdadm", "mdadm", event.Warning, map[string]string{"hostname": "pve1", "event": "DegradedArray", "array": "/dev/md0"}},
	"mdadm-test.eml":                       {"mdadm", "mdadm", event.Notice, map[string]string{"hostname": "nas2", "event": "TestMessage", "array": "/dev/md/nas2:data"}},
	"mdadm-failspare.eml":                  {"mdadm", "mdadm", event.Error, map[string]string{"hostname": "nas2", "event": "FailSpare", "array": "/dev/md1", "component": "/dev/sdd1"}},
	"mails/mdadm-fail.eml":                 {"mdadm", "mdadm", event.Error, map[string]string{"hostname": "pve1", "event": "Fail", "array": "/dev/md0", "component": "/dev/sdb1"}},
	"zfs-scrub-clean.eml":                  {"zfs", "zfs", event.Info, map[string]string{"hostname": "pve1", "event": "scrub_finish", "pool": "rpool"}},
	"zfs-scrub-errors.eml":                 {"zfs", "zfs", event.Error, map[string]string{"hostname": "nas2", "event": "scrub_finish", "pool": "tank"}},
	"zfs-resilver-finish.eml":              {"zfs", "zfs", event.Info, map[string]string{"hostname": "nas2", "event": "resilver_finish", "pool": "tank"}},
	"zfs-statechange-faulted.eml":          {"zfs", "zfs", event.Error, map[string]string{"hostname": "nas2", "event": "statechange", "pool": "tank", "state": "FAULTED", "vdev": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d5-part1"}},
	"zfs-statechange-degraded.eml":         {"zfs", "zfs", event.Warning, map[string]string{"hostname": "pve1", "event": "statechange", "pool": "rpool", "state": "DEGRADED", "vdev": "/dev/disk/by-id/ata-Samsung_SSD_870_EVO_1TB_S6PTNX0R654321-part3"}},
	"mails/mbox-forward-zed.eml":           {"zfs", "zfs", event.Info, map[string]string{"hostname": "pve1", "event": "scrub_finish", "pool": "rpool"}},
	"vzdump-failed.eml":                    {"vzdump", "vzdump", event.Error, map[string]string{"hostname": "pve1", "job-status": "backup failed"}},
	"mails/vzdump-ok.eml":                  {"vzdump", "vzdump", event.Info, map[string]string{"hostname": "pve1", "job-status": "backup successful"}},
	"pbs-gc-ok.eml":                        {"proxmox-backup", "gc", event.Info, map[string]string{"hostname": "pbs1", "datastore": "store1"}},
	"pbs-prune-failed.eml":                 {"proxmox-backup", "prune", event.Error, map[string]string{"hostname": "pbs1", "datastore": "store1", "job-id": "s-3a1f9c2e-b7d1"}},
	"pbs-verify-failed.eml":                {"proxmox-backup", "verification", event.Error, map[string]string{"hostname": "pbs1", "datastore": "store1", "job-id": "v-7b2e9d11-0c4a"}},
	"pbs-sync-ok.eml":                      {"proxmox-backup", "sync", event.Info, map[string]string{"hostname": "pbs1", "datastore": "store2", "job-id": "s-offsite-pull"}},
	"pbs-tape-backup-failed.eml":           {"proxmox-backup", "tape-backup", event.Error, map[string]string{"hostname": "pbs1", "datastore": "store1", "job-id": "weekly-lto", "media-pool": "weekly"}},
	"pbs-tape-load.eml":                    {"proxmox-backup", "tape-load", event.Notice, map[string]string{"hostname": "pbs1"}},
	"pbs-gc-failed.eml":                    {"proxmox-backup", "gc", event.Error, map[string]string{"hostname": "pbs1", "datastore": "store2"}},
	"pbs-prune-ok.eml":                     {"proxmox-backup", "prune", event.Info, map[string]string{"hostname": "pbs1", "datastore": "store1", "job-id": "s-3a1f9c2e-b7d1"}},
	"pbs-verify-ok.eml":                    {"proxmox-backup", "verification", event.Info, map[string]string{"hostname": "pbs1", "datastore": "store1", "job-id": "v-7b2e9d11-0c4a"}},
	"pbs-sync-local-failed.eml":            {"proxmox-backup", "sync", event.Error, map[string]string{"hostname": "pbs1", "datastore": "store3", "job-id": "s-local-copy"}},
	"pbs-tape-backup-ok.eml":               {"proxmox-backup", "tape-backup", event.Info, map[string]string{"hostname": "pbs1", "datastore": "store1", "media-pool": "weekly"}},
	"pbs-acme-failed.eml":                  {"proxmox-backup", "acme", event.Error, map[string]string{"hostname": "pbs1"}},
	"pbs-package-updates.eml":              {"proxmox-backup", "package-updates", event.Info, map[string]string{"hostname": "pbs1"}},
	"negative-personal.eml":                none("herald-host"),
	"negative-error-budget-report.eml":     none("herald-host"),
	"negative-reply-quoting-cron.eml":      none("herald-host"),
	"negative-forwarded-bacula-report.eml": none("herald-host"),
	"negative-personal-smart-subject.eml":  none("herald-host"),
	"negative-html-newsletter.eml":         none("herald-host"),
	"mails/rundeck-html-alternative.eml":   none("herald-host"),
	"mails/truenas-html-only.eml":          none("herald-host"),
	"mails/broken-truncated-multipart.eml": none("herald-host"),
	"mails/broken-bad-boundary.eml":        none("herald-host"),
}

// samples lists every sample: this package's, then mailconv's as mails/NAME.
func samples(tb testing.TB) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, dir := range []string{samplesDir, mailsDir} {
		files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil || len(files) == 0 {
			tb.Fatalf("no samples in %s: %v", dir, err)
		}
		for _, f := range files {
			name := filepath.Base(f)
			if dir == mailsDir {
				name = "mails/" + name
			}
			out[name] = f
		}
	}
	return out
}

func TestSamples(t *testing.T) {
	all := samples(t)
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(all[name])
			if err != nil {
				t.Fatal(err)
			}
			ev, res := mailconv.ConvertClassified(raw, options())
			w, ok := expectations[name]
			if !ok {
				if strings.HasPrefix(name, "mails/") {
					w = none("herald-host") // mailconv's other samples are no known sender
				} else {
					t.Fatalf("sample %s has no entry in expectations", name)
				}
			}
			if res.Classifier != w.classifier || ev.Type() != w.typ || ev.Severity != w.sev {
				t.Errorf("classifier %q type %q severity %v; want %q %q %v", res.Classifier, ev.Type(), ev.Severity, w.classifier, w.typ, w.sev)
			}
			for k, v := range w.fields {
				if ev.Fields[k] != v {
					t.Errorf("field %s = %q, want %q", k, ev.Fields[k], v)
				}
			}
			for k := range ev.Fields {
				switch k {
				case "type", "from", "to", "subject", "message-id":
					continue
				}
				if _, ok := w.fields[k]; !ok {
					t.Errorf("unexpected field %s = %q", k, ev.Fields[k])
				}
			}
			if !bytes.Equal(ev.Mail.Raw, raw) {
				t.Error("raw mail not kept")
			}
			checkGolden(t, name, ev)
		})
	}
	for name := range expectations {
		if _, ok := all[name]; !ok {
			t.Errorf("expectation for a missing sample %s", name)
		}
	}
}

// checkGolden compares the event with testdata/classify/NAME.json (for
// mailconv's samples: testdata/classify/mails/NAME.json).
func checkGolden(t *testing.T, name string, ev *event.Event) {
	t.Helper()
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	golden := filepath.Join(samplesDir, strings.TrimSuffix(name, ".eml")+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./internal/classify -update writes it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("event differs from %s\n--- got\n%s\n--- want\n%s", golden, b, want)
	}
}

// The config package checks classifiers-disable names against its own
// list: it must be this package's.
func TestConfigKnowsTheBuiltins(t *testing.T) {
	if got, want := strings.Join(config.BuiltinClassifiers, ","), strings.Join(Names(), ","); got != want {
		t.Errorf("config.BuiltinClassifiers = %s, want %s", got, want)
	}
}

func TestChain(t *testing.T) {
	user := []*config.Classifier{{Name: "a"}, {Name: "off", Disable: true}, {Name: "b"}}
	var got []string
	for _, c := range Chain(user, []string{"cron", "zfs"}) {
		got = append(got, c.(mailconv.Named).Name())
	}
	want := "classifier:a classifier:b bacula smartd unattended-upgrades apticron logwatch mdadm vzdump proxmox-backup"
	if strings.Join(got, " ") != want {
		t.Errorf("chain = %s\nwant    %s", strings.Join(got, " "), want)
	}
}
