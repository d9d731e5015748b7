printf 'Hi Alice,\n\nare we still on for dinner on Friday? The RAID talk at the meetup was great,\nbut my demo failed twice with a permission error. Lessons learned.\n\nCheers,\nBob\n' | mail -s "Dinner on Friday?" alice@example.org
sleep 0.05
printf 'Hi team,\n\nthe error budget for November is 82%% spent (SLO 99.9%%).\nNo incident failed the backup jobs this month.\n\nSee the dashboard for details.\n-- \nSRE weekly\n' | mail.mailutils -s "Error budget report for November" team@example.org
sleep 0.05
printf 'Hi,\n\nyes, I saw that one. It failed because the NAS was rebooting.\n\n> Subject: Cron <root@pve1> /usr/local/bin/backup.sh (failed)\n> rsync error: some files could not be transferred (code 23)\n\nNo action needed.\nCarol\n' | mail -r carol@example.org -s "Re: Cron <root@pve1> /usr/local/bin/backup.sh (failed)" ops@example.org
sleep 0.05
printf 'FYI, this came in last night:\n\n>   JobId:                  2291\n>   Job:                    web1-fd-backup.2026-12-02_01.05.00_11\n>   Client:                 "web1-fd"\n>   Termination:            *** Backup Error ***\n\nCan you check the client?\n' | mail -r dave@example.org -s "Fwd: Bacula: Backup Fatal Error of web1-fd Full" ops@example.org
sleep 0.05
printf 'Hi,\n\nI got a mail with this subject yesterday, is the disk in nas2 really dying?\nShould I order a replacement?\n\nThanks, Erin\n' | mail -r erin@example.org -s "SMART error (Health) detected on host: nas2" ops@example.org
