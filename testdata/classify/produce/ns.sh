#!/bin/sh
# ns.sh HOST CMD...: run CMD with /usr/sbin/sendmail = capture script, hostname HOST (FQDN HOST.example.org)
h=$1; shift
printf '127.0.0.1 localhost\n127.0.1.1 %s.example.org %s\n' "$h" "$h" > /tmp/herald-samples/hosts.$h
exec unshare -mu sh -c 'hostname "$0"; mount --bind /tmp/herald-samples/hosts.$0 /etc/hosts; mount --bind /tmp/herald-samples/sbin /usr/sbin; exec "$@"' "$h" "$@"
