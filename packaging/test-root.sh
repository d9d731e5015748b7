#!/bin/sh
# test-root.sh [CACHE_DIR] — prints the path of a tarball holding a minimal
# Debian root file system (debootstrap --variant=minbase) for the package
# test in packaging/deb_test.go, creating it on first use.
#
# The root is made for the host's own release and architecture, from the
# mirror apt already uses, so the .deb is installed where it was built for.
# Making it takes a few minutes and downloads about 40 MB; later runs reuse
# the tarball. scripts/install-test-deps.sh may call this to warm the cache.
# Needs root and debootstrap.
set -eu

cache=${1:-/var/cache/herald-test}

die() { echo "test-root: $*" >&2; exit 1; }

command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing: run scripts/install-test-deps.sh as root"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || suite=bookworm
arch=$(dpkg --print-architecture)

# The first Debian archive URI apt uses here (deb822 or one-line format);
# the security archive is not a full mirror.
mirror=$(
	{
		cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p'
	} | grep -E '^https?://.*/debian/?$' | head -n 1
)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

tarball=$cache/$suite-minbase-$arch.tar.gz
if [ -s "$tarball" ]; then
	echo "$tarball"
	exit 0
fi

mkdir -p "$cache"
# One builder at a time: concurrent test runs wait for the first one.
exec 9>"$cache/.lock"
flock 9
if [ -s "$tarball" ]; then
	echo "$tarball"
	exit 0
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "test-root: debootstrap --variant=minbase $suite from $mirror (first run only)" >&2
if ! debootstrap --variant=minbase --arch="$arch" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1; then
	tail -n 20 "$work/log" >&2
	die "debootstrap failed (full log above)"
fi
# apt's package cache is not needed to install a local .deb.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*_Packages
tar -C "$work/root" --numeric-owner -czf "$work/root.tar.gz" .
mv "$work/root.tar.gz" "$tarball"
echo "$tarball"
