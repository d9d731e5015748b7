H=127.0.0.1:2599
bsmtp -h $H -f "(Bacula) <root@localhost>" -s "Bacula: Backup Fatal Error of web1-fd Full" root@localhost < backup-error.txt
bsmtp -h $H -f "(Bacula) <root@localhost>" -s "Bacula: Backup OK -- with warnings of fileserver-fd Differential" root@localhost < backup-warnings.txt
bsmtp -h $H -f "(Bacula) <root@localhost>" -s "Bacula: Restore Canceled of web1-fd " root@localhost < restore-canceled.txt
bsmtp -8 -h $H -f "Bacula Director <bacula@backup.example.org>" -s "[backup] VerifyHome (2301): Verify Differences" admin@example.org < verify-diff.txt
