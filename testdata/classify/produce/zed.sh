#!/bin/sh
# Writes a zedlet's note as OpenZFS 2.1's zed.d scripts do and sends it as
# zed_notify_email does: mail -s '@SUBJECT@' @ADDRESS@ < note.
kind=$1 pool=$2
note=$(mktemp)
host=$(hostname)
case $kind in
scrub_finish|resilver_finish)
  action=${kind%_finish}
  subject="ZFS ${kind} event for ${pool} on ${host}"
  { echo "ZFS has finished a ${action}:"; echo
    echo "   eid: $3"; echo " class: ${kind}"; echo "  host: ${host}"; echo "  time: $4"
    cat "$5"; } > "$note" ;;
statechange)
  state=$3
  subject="ZFS device fault for pool ${pool} on ${host}"
  { if [ "$state" = FAULTED ]; then
      echo "The number of I/O errors associated with a ZFS device exceeded"
      echo "acceptable levels. ZFS has marked the device as faulted."
    elif [ "$state" = DEGRADED ]; then
      echo "The number of checksum errors associated with a ZFS device"
      echo "exceeded acceptable levels. ZFS has marked the device as"
      echo "degraded."
    else echo "ZFS has detected that a device was removed."; fi
    echo
    echo " impact: Fault tolerance of the pool may be compromised."
    echo "    eid: $4"
    echo "  class: statechange"
    echo "  state: ${state}"
    echo "   host: ${host}"
    echo "   time: $5"
    echo "  vtype: disk"
    echo "  vpath: $6"
    echo "  vguid: 0x5A3B7C9D1E2F4061"
    echo "   pool: ${pool} (0x8F1E2D3C4B5A6978)"; } > "$note" ;;
esac
mail -s "$subject" root < "$note"
rm -f "$note"
