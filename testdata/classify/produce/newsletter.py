# An HTML-only newsletter as a list server sends it (sendmail -t).
import subprocess
html = """<html><head><style>h1{color:#c00}</style></head><body>
<h1>RAID Weekly #48: Why your backup FAILED</h1>
<p>Every admin has seen it: <b>Termination: Backup Error</b>, a <i>DegradedArray</i> event,
a scrub that finished with errors. This week we look at the 10 most common ERROR messages.</p>
<table><tr><td>1.</td><td>SMART error (CurrentPendingSector) detected on host: yours?</td></tr>
<tr><td>2.</td><td>Fail event on /dev/md0 - what now?</td></tr>
<tr><td>3.</td><td>unattended-upgrades result: FAILURE</td></tr></table>
<p>Critical: read to the end! Failed, error, fatal, RAID, degraded, faulted.</p>
<p><a href="https://news.example.com/unsubscribe">Unsubscribe</a></p>
</body></html>"""
msg = ("From: RAID Weekly <newsletter@news.example.com>\nTo: bob@example.org\nSubject: RAID Weekly #48: Why your backup FAILED (and 9 more errors)\n"
       "MIME-Version: 1.0\nContent-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nList-Unsubscribe: <https://news.example.com/unsubscribe>\n"
       "Precedence: bulk\n\n" + html + "\n")
subprocess.run(["/usr/sbin/sendmail", "-t", "-i"], input=msg.encode(), check=True)
