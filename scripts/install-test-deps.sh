#!/usr/bin/env bash
# Installs the real clients and tools that herald's integration tests drive:
# bsmtp (bacula-common), curl, swaks, bsd-mailx's `mail`, GNU mailutils' mail and
# smartd_warning.sh (smartmontools; its service is not started), Python 3,
# Postfix's smtp-sink (unpacked, never installed as the system MTA),
# systemd-socket-activate, slapd (LDAP tests), Prometheus Alertmanager and
# promtool (their services disabled) and Chromium (the status page's browser
# test). Idempotent; needs root only when
# something is missing. bsd-mailx depends on mail-transport-agent: a tiny
# local placeholder package provides it so that no real MTA takes
# /usr/sbin/sendmail.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have bsmtp   || need+=(bacula-common)
have curl    || need+=(curl)
have swaks   || need+=(swaks libnet-ssleay-perl libio-socket-inet6-perl libauthen-sasl-perl)
have bsd-mailx || need+=(bsd-mailx)
have mail.mailutils || need+=(mailutils)
[ -x /usr/share/smartmontools/smartd_warning.sh ] || need+=(smartmontools)
have python3 || need+=(python3)
have systemd-socket-activate || need+=(systemd)
have openssl || need+=(openssl)
have lintian || need+=(lintian)
[ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
have systemd-analyze || need+=(systemd)
# slapd for the LDAP recipient tests, which start their own instance.
[ -x /usr/sbin/slapd ] || need+=(slapd ldap-utils)
have prometheus-alertmanager || need+=(prometheus-alertmanager)
have promtool || need+=(prometheus)
have chromium || need+=(chromium)
sink_dir=${HERALD_PEERS_DIR:-/opt/herald-test}/postfix
[ -x "$sink_dir/usr/sbin/smtp-sink" ] || need_sink=1

if [ ${#need[@]} -eq 0 ] && [ -z "${need_sink:-}" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${need[*]} ${need_sink:+postfix smtp-sink}; run as root: sudo $0" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/periodic/herald-apt-updated
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
  apt-get update -qq
  mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi

# Block service starts during installation (cron, postfix...) when no
# policy-rc.d exists yet.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1
fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT

if [[ " ${need[*]} " == *" bsd-mailx "* || " ${need[*]} " == *" mailutils "* ]] && ! dpkg -s mail-transport-agent >/dev/null 2>&1 \
   && ! dpkg-query -W -f '${Provides}\n' 2>/dev/null | grep -q mail-transport-agent; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/pkg/DEBIAN"
  cat >"$tmp/pkg/DEBIAN/control" <<CTL
Package: herald-test-mta-placeholder
Version: 1.0
Architecture: all
Maintainer: herald developers <root@localhost>
Provides: mail-transport-agent
Description: placeholder so that mail clients install without a real MTA
 Used by herald's tests only. Ships no files.
CTL
  dpkg-deb --build "$tmp/pkg" "$tmp/placeholder.deb" >/dev/null
  dpkg -i "$tmp/placeholder.deb" >/dev/null
  rm -rf "$tmp"
fi

if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The LDAP tests run their own slapd; the system one stays stopped and off.
if [[ " ${need[*]} " == *" slapd "* ]]; then
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now slapd >/dev/null 2>&1 || true
  fi
  update-rc.d slapd disable >/dev/null 2>&1 || true
fi
# The tests start their own Alertmanagers on loopback ports and use
# Prometheus only for promtool; the Debian services (system-wide, on :9093
# and :9090) must not run or start at boot.
for svc in prometheus-alertmanager prometheus; do
  if [[ " ${need[*]} " == *" $svc "* ]]; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done

if [ -n "${need_sink:-}" ]; then
  tmp=$(mktemp -d); chmod 755 "$tmp"   # apt's _apt user downloads into it
  (cd "$tmp" && apt-get download -qq postfix >/dev/null)
  mkdir -p "$sink_dir"
  dpkg -x "$tmp"/postfix_*.deb "$sink_dir"
  rm -rf "$tmp"
fi
# The .deb test installs herald into a throwaway bookworm root; building it
# once here (cached as a tarball) keeps the test itself fast.
if [ -x packaging/test-root.sh ]; then
  packaging/test-root.sh >/dev/null || echo "install-test-deps: could not prepare the package test root" >&2
fi
echo "install-test-deps: installed ${need[*]} ${need_sink:+postfix(smtp-sink, unpacked)}"
