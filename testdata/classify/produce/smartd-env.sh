#!/bin/sh
# smartd's environment for smartd_warning.sh, as smartd 7.3 sets it (Debian: -M exec smartd-runner)
export SMARTD_ADDRESS=root SMARTD_MAILER=/usr/share/smartmontools/smartd-runner
export SMARTD_DEVICE=/dev/sda SMARTD_DEVICETYPE=sat SMARTD_DEVICESTRING='/dev/sda [SAT]'
export SMARTD_DEVICEINFO='WDC WD40EFRX-68N32N0, S/N:WD-WCC7K1234567, WWN:5-0014ee-2b1234567, FW:82.00A82, 4.00 TB'
export SMARTD_TFIRST='Wed Dec  2 05:30:01 2026 UTC' SMARTD_TFIRSTEPOCH=1796189401
export SMARTD_FAILTYPE="$1" SMARTD_MESSAGE="$2"
[ -n "$3" ] && export SMARTD_NEXTDAYS="$3"
export SMARTD_FULLMESSAGE="$SMARTD_MESSAGE"
exec /usr/share/smartmontools/smartd_warning.sh
