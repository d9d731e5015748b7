#!/bin/sh
# What mdadm 4.2 Monitor.c writes into popen("/usr/sbin/sendmail -t") for
# an event: EVENT DEV [COMPONENT] (MAILFROM unset: "From: mdadm monitoring <root>").
event=$1 dev=$2 disc=$3 mdstat=$4
hname=$(hostname)
{
printf 'From: mdadm monitoring <root>\n'
printf 'To: %s\n' root
printf 'Subject: %s event on %s:%s\n\n' "$event" "$dev" "$hname"
printf 'This is an automatically generated mail message from mdadm\n'
printf 'running on %s\n\n' "$hname"
printf 'A %s event had been detected on md device %s.\n\n' "$event" "$dev"
[ -n "$disc" ] && printf 'It could be related to component device %s.\n\n' "$disc"
printf 'Faithfully yours, etc.\n'
printf '\nP.S. The /proc/mdstat file currently contains the following:\n\n'
cat "$mdstat"
} | /usr/sbin/sendmail -t
