# Renders Proxmox VE / PBS notification mails from their vendor templates'
# text (pve-manager templates/default/vzdump-*.hbs, proxmox-backup
# templates/default/*.hbs) in proxmox-sendmail's multipart/alternative form,
# and hands them to /usr/sbin/sendmail as proxmox-notify does.
import sys, subprocess, time, html
host, fqdn = sys.argv[1], sys.argv[1] + ".example.org"
kind = sys.argv[2]
T = {}
if kind == "vzdump-failed":
    author = "Proxmox VE"
    subject = "vzdump backup status (%s): backup failed" % fqdn
    text = """Details
=======
VMID    Name          Status    Time    Size          Filename
100     debian-web    ok        44s     1.921 GiB     vzdump-qemu-100-2026_12_02-01_00_02.vma.zst
102     win-ad        err       3s      0 B           null

Total running time: 47s
Total size: 1.921 GiB

Logs
====
vzdump 100 102 --mode snapshot --compress zstd --storage local --notification-mode notification-system --quiet 1

100: 2026-12-02 01:00:02 INFO: Starting Backup of VM 100 (qemu)
100: 2026-12-02 01:00:46 INFO: Finished Backup of VM 100 (00:00:44)

102: 2026-12-02 01:00:46 INFO: Starting Backup of VM 102 (qemu)
102: 2026-12-02 01:00:48 ERROR: Backup of VM 102 failed - unable to create temporary directory '/mnt/pve/nfs-backup/dump/vzdump-qemu-102-2026_12_02-01_00_46.tmp' at /usr/share/perl5/PVE/VZDump.pm line 1042.
"""
else:
    author = "Proxmox Backup Server"
    url = "<https://%s:8007/#%%s>" % fqdn
    mails = {
      "pbs-gc-ok": ("Garbage Collect Datastore 'store1' successful", """Datastore:            store1
Task ID:              UPID:%s:00000D2A:0001F3B4:00000003:674D2F00:garbage_collection:store1:root@pam:
Index file count:     1042

Removed garbage:      18.21 GiB
Removed chunks:       9120
Removed bad chunks:   0

Leftover bad chunks:  0
Pending removals:     1.02 GiB (in 412 chunks)

Original Data usage:  4.12 TiB
On-Disk usage:        512.33 GiB (12.14%%)
On-Disk chunks:       301224

Deduplication Factor: 8.24

Garbage collection successful.


Please visit the web interface for further details:

""" % host + url % "DataStore-store1"),
      "pbs-prune-failed": ("Pruning datastore 'store1' failed", """
Job ID:       s-3a1f9c2e-b7d1
Datastore:    store1

Pruning failed: removing backup snapshot \"/mnt/datastore/store1/vm/101/2026-11-01T01:00:02Z\" failed - Directory not empty (os error 39)


Please visit the web interface for further details:

""" + url % "pbsServerAdministration:tasks"),
      "pbs-verify-failed": ("Verify Datastore 'store1' failed", """
Job ID:    v-7b2e9d11-0c4a
Datastore: store1

Verification failed on these snapshots/groups:

    vm/101/2026-11-30T01:00:02Z
    ct/104/2026-11-30T01:10:11Z


Please visit the web interface for further details:

""" + url % "pbsServerAdministration:tasks"),
      "pbs-sync-ok": ("Sync remote 'offsite' datastore 'backup' successful", """Job ID:             s-offsite-pull
Datastore:          store2
Remote:             offsite
Remote Store:       backup
Synchronization successful.


Please visit the web interface for further details:

""" + url % "DataStore-store2"),
      "pbs-tape-backup-failed": ("Tape Backup 'weekly-lto' datastore 'store1' failed", """Job ID:     weekly-lto
Datastore:  store1
Tape Pool:  weekly
Tape Drive: lto8

Used Tapes:
WK0007L8
Tape Backup failed: media 'WK0008L8' is not writable: tape is write protected


Please visit the web interface for further details:

""" + url % "pbsServerAdministration:tasks"),
      "pbs-tape-load": ("Load Media 'WK0008L8' request for changer 'autoloader'", """Please insert the requested media into the changer.

Changer: autoloader
Media: WK0008L8"""),
      "pbs-gc-failed": ("Garbage Collect Datastore 'store2' failed", """Datastore: store2

Garbage collection failed: unable to get exclusive lock - EWOULDBLOCK: Operation would block


Please visit the web interface for further details:

""" + url % "pbsServerAdministration:tasks"),
      "pbs-prune-ok": ("Pruning datastore 'store1' successful", """
Job ID:       s-3a1f9c2e-b7d1
Datastore:    store1

Pruning successful.


Please visit the web interface for further details:

""" + url % "DataStore-store1"),
      "pbs-verify-ok": ("Verify Datastore 'store1' successful", """
Job ID:    v-7b2e9d11-0c4a
Datastore: store1

Verification successful.


Please visit the web interface for further details:

""" + url % "DataStore-store1"),
      "pbs-sync-local-failed": ("Sync local datastore 'store1' failed", """Job ID:             s-local-copy
Datastore:          store3
Local Source Store: store1
Synchronization failed: connection reset by peer


Please visit the web interface for further details:

""" + url % "pbsServerAdministration:tasks"),
      "pbs-tape-backup-ok": ("Tape Backup datastore 'store1' successful", """Datastore:  store1
Tape Pool:  weekly
Tape Drive: lto8

Snapshots included:

vm/101/2026-11-30T01:00:02Z
ct/104/2026-11-30T01:10:11Z
Duration: 1h 12m 3s
Used Tapes:
WK0007L8
Tape Backup successful.


Please visit the web interface for further details:

""" + url % "DataStore-store1"),
      "pbs-acme-failed": ("Could not renew certificate", """Proxmox Backup Server was not able to renew a TLS certificate.

Error: validating challenge failed - status: invalid

Please visit the web interface for further details:

""" + url % "pbsCertificateConfiguration"),
      "pbs-package-updates": ("New software packages available (%s)" % host, """Proxmox Backup Server has the following updates available:
    proxmox-backup-server: 3.2.7-1 -> 3.2.8-1
    proxmox-widget-toolkit: 4.2.3 -> 4.2.4

To upgrade visit the web interface:

""" + url % "pbsServerAdministration:updates"),
    }
    subject, text = mails[kind]
frm = "%s <root@%s>" % (author, fqdn)
b = "----_=_NextPart_001_%d" % int(time.time())
htmlpart = "<html>\n    <body>\n        <pre>\n" + html.escape(text) + "\n        </pre>\n    </body>\n</html>\n"
msg = ("Content-Type: multipart/alternative;\n\tboundary=\"%s\"\nMIME-Version: 1.0\nSubject: %s\nFrom: %s\nTo: root@example.org\n"
       "Date: %s\nAuto-Submitted: auto-generated;\n\nThis is a multi-part message in MIME format.\n\n"
       "--%s\nContent-Type: text/plain;\n\tcharset=\"UTF-8\"\nContent-Transfer-Encoding: 8bit\n\n%s\n"
       "--%s\nContent-Type: text/html;\n\tcharset=\"UTF-8\"\nContent-Transfer-Encoding: 8bit\n\n%s\n--%s--\n") % (
    b, subject, frm, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), b, text, b, htmlpart, b)
subprocess.run(["/usr/sbin/sendmail", "-B", "8BITMIME", "-f", "root@" + fqdn, "--", "root@example.org"], input=msg.encode(), check=True)
