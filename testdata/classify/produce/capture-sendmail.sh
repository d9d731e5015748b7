#!/bin/sh
# capture stand-in for /usr/sbin/sendmail: argv + stdin into $CAP (default /tmp/herald-samples/cap)
d=${CAP:-/tmp/herald-samples/cap}
n=$(date +%s%N)
printf '%s\n' "$@" > "$d/$n.argv"
cat > "$d/$n.eml"
exit 0
