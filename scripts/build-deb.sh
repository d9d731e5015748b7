#!/bin/sh
# build-deb.sh [-o OUTDIR] — builds dist/herald_VERSION_ARCH.deb from this
# tree with plain dpkg-deb (no debhelper), reproducibly: the same tree gives
# the same bytes. Prints the path of the .deb as its last line.
# build-deb.sh --print-version prints "VERSION SOURCE_DATE_EPOCH" and stops.
#
# Inputs (environment, all optional):
#   SOURCE_DATE_EPOCH  timestamp for every file and the changelog;
#                      default: the last commit's time (git log -1 --format=%ct)
#   HERALD_VERSION     Debian version; default: from `git describe`, see below
#   DEB_HOST_ARCH      Debian architecture; default: dpkg --print-architecture
#   HERALD_MAINTAINER  the Maintainer field
#
# Version mapping (Debian versions sort where git tags do):
#   tag v1.2.3 on HEAD             1.2.3
#   tag v1.2.0-rc1 on HEAD         1.2.0~rc1      (a pre-release sorts before 1.2.0)
#   3 commits after v1.2.3         1.2.3+git20250520.3.abc1234
#   no tag at all                  0.0~git20250520.abc1234
#   uncommitted changes            the above + "+dirty"
# The date is the commit date (UTC). The package is native (no Debian
# revision): herald's packaging lives in its own repository.
#
# Files come from packaging/ (control, maintainer scripts, docs, man pages),
# systemd/ (units), and testdata/config/herald.cfg.example (the commented
# /etc/herald/herald.cfg).
set -eu
umask 022
export LC_ALL=C TZ=UTC

die() { echo "build-deb: $*" >&2; exit 1; }

outdir=
print_version=
while [ $# -gt 0 ]; do
	case $1 in
	-o) [ $# -ge 2 ] || die "-o needs a directory"; outdir=$2; shift 2 ;;
	--print-version) print_version=1; shift ;;
	-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
	*) die "unknown argument $1 (usage: build-deb.sh [-o OUTDIR] [--print-version])" ;;
	esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -n "$outdir" ] || outdir=$top/dist
pkg=$top/packaging

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
		die "not a git checkout: set SOURCE_DATE_EPOCH and HERALD_VERSION"
fi
export SOURCE_DATE_EPOCH

# debian_version maps `git describe` to a Debian version (see the header).
debian_version() {
	d=$(git describe --tags --always --dirty 2>/dev/null) || die "git describe failed: set HERALD_VERSION"
	dirty=
	case $d in *-dirty) dirty=+dirty; d=${d%-dirty} ;; esac
	day=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d)
	if printf '%s\n' "$d" | grep -Eq '^[0-9a-f]{4,}$'; then
		v=0.0~git$day.$d
	else
		extra=
		if printf '%s\n' "$d" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
			hash=${d##*-g}
			rest=${d%-g*}
			n=${rest##*-}
			d=${rest%-*}
			extra=+git$day.$n.$hash
		fi
		v=$(printf '%s\n' "${d#v}" | tr '-' '~')$extra
	fi
	printf '%s%s\n' "$v" "$dirty"
}

version=${HERALD_VERSION:-$(debian_version)}
dpkg --validate-version "$version" 2>/dev/null || die "\"$version\" is not a valid Debian version (tags should look like v1.2.3)"
case $version in *-*) die "version $version has a Debian revision: herald is a native package" ;; esac
if [ -n "$print_version" ]; then
	echo "$version $SOURCE_DATE_EPOCH"
	exit 0
fi

for tool in dpkg-deb go gzip md5sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

arch=${DEB_HOST_ARCH:-$(dpkg --print-architecture)}
goarm=
case $arch in
amd64|arm64|riscv64|s390x|mips64el) goarch=$arch ;;
i386) goarch=386 ;;
armhf) goarch=arm goarm=7 ;;
armel) goarch=arm goarm=5 ;;
ppc64el) goarch=ppc64le ;;
*) die "no Go architecture known for Debian architecture $arch" ;;
esac

maintainer=${HERALD_MAINTAINER:-herald maintainers <herald@example.org>}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"
chmod 0755 "$root" # the tarball's "./" entry

# Binaries. The shim gets the state directory compiled in: the setgid shim
# trusts only a compiled-in directory (HERALD_STATE_DIR makes it drop its
# group).
ldflags="-s -w -X herald/internal/version.Version=$version -X herald/internal/shim.DefaultStateDir=/var/lib/herald"
install -d "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib/herald"
for cmd in herald:usr/bin herald-sendmail:usr/sbin herald-mbox-create:usr/lib/herald; do
	name=${cmd%%:*}
	dir=${cmd#*:}
	GOOS=linux GOARCH=$goarch GOARM=$goarm CGO_ENABLED=0 \
		go build -trimpath -ldflags "$ldflags" -o "$root/$dir/$name" "./cmd/$name" ||
		die "go build ./cmd/$name failed"
done
chmod 0755 "$root/usr/bin/herald" "$root/usr/sbin/herald-sendmail" "$root/usr/lib/herald/herald-mbox-create"

# license_paragraph FILES COMMENT LICENSE_FILE prints one DEP-5 Files
# paragraph: the holders from the license's Copyright lines, its license
# recognised by its wording, and its text (Apache-2.0 points at
# common-licenses, as Debian does).
license_paragraph() {
	holders=$(grep -E '^[[:space:]]*(Copyright|COPYRIGHT|copyright)[[:space:]]*(\([cC]\)|©)?[[:space:]]*[0-9]' "$3" |
		sed -E 's/^[[:space:]]*(Copyright|COPYRIGHT|copyright)[[:space:]]*(\([cC]\)|©)?[[:space:]]*//; s/[[:space:]]+$//' | sort -u)
	[ -n "$holders" ] || holders="the authors of $2"
	if grep -q 'Permission is hereby granted, free of charge' "$3"; then
		name=Expat
	elif grep -q 'Apache License' "$3" && grep -q 'Version 2.0' "$3"; then
		name=Apache-2.0
	elif grep -q 'Redistribution and use in source and binary forms' "$3"; then
		if grep -q 'Neither the name' "$3"; then name=BSD-3-clause; else name=BSD-2-clause; fi
	else
		die "cannot tell the license of $2 from $3: add it to license_paragraph"
	fi
	printf '\nFiles: %s\n' "$1"
	printf '%s\n' "$holders" | awk 'NR == 1 { print "Copyright: " $0; next } { print " " $0 }'
	printf 'Comment: %s\n' "$2"
	printf 'License: %s\n' "$name"
	if [ "$name" = Apache-2.0 ]; then
		printf ' On Debian systems, the complete text of the Apache License, Version 2.0\n'
		printf ' can be found in /usr/share/common-licenses/Apache-2.0.\n'
		return
	fi
	# The text without its title and copyright lines; blank lines become
	# " .", leading and trailing ones go.
	awk '
		{ sub(/[ \t\r]+$/, "") }
		/^[ \t]*(Copyright|COPYRIGHT|copyright)[ \t]*(\([cC]\)|©)?[ \t]*[0-9]/ { next }
		!started && ($0 == "" || /^[ \t]*(The )?MIT License/ || /^[ \t]*BSD [0-9]-Clause License/) { next }
		{ started = 1 }
		$0 == "" { blank++; next }
		{ while (blank > 0) { print " ."; blank-- } print " " $0 }
	' "$3"
}

# copyright: herald's paragraph, then the Go standard library and every
# module linked into the binaries, from `go version -m` (a replaced module
# is the replacement that was compiled).
modcache=$(go env GOMODCACHE)
{
	cat "$pkg/debian/copyright"
	license_paragraph "go/*" "the Go standard library and runtime, $(go env GOVERSION)" "$(go env GOROOT)/LICENSE"
	for bin in "$root/usr/bin/herald" "$root/usr/sbin/herald-sendmail" "$root/usr/lib/herald/herald-mbox-create"; do
		go version -m "$bin"
	done | awk '$1 == "dep" { if (m != "") print m, v; m = $2; v = $3; next }
		$1 == "=>" { m = $2; v = $3; next }
		END { if (m != "") print m, v }' | sort -u |
	while read -r mod ver; do
		# The module cache escapes upper-case letters as "!" + lower case.
		dir=$modcache/$(printf '%s' "$mod" | sed 's/[A-Z]/!\l&/g')@$ver
		lic=$(ls "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* 2>/dev/null | head -n 1) || true
		[ -n "$lic" ] || die "no license file for $mod $ver in $dir"
		license_paragraph "vendor/$mod/*" "Go module $mod $ver" "$lic"
	done
} >"$work/copyright"

# The shim under every name a mail program looks for (multi-call by
# argv[0]). Symlinks are relative, as policy wants.
ln -s herald-sendmail "$root/usr/sbin/sendmail"
ln -s herald-sendmail "$root/usr/sbin/newaliases"
install -d "$root/usr/lib"
ln -s ../sbin/herald-sendmail "$root/usr/lib/sendmail"
ln -s ../sbin/herald-sendmail "$root/usr/bin/mailq"
ln -s ../sbin/herald-sendmail "$root/usr/bin/newaliases"

# systemd units: whatever systemd/ holds. Units with an [Install] section
# (and no template "@") are enabled and started by postinst.
units=
install -d "$root/usr/lib/systemd/system"
for u in systemd/*.service systemd/*.socket systemd/*.timer systemd/*.path; do
	[ -f "$u" ] || continue
	install -m 0644 "$u" "$root/usr/lib/systemd/system/"
	b=$(basename "$u")
	case $b in *@*) continue ;; esac
	grep -q '^\[Install\]' "$u" && units="$units $b"
done
units=${units# }
[ -n "$(ls "$root/usr/lib/systemd/system")" ] || rmdir "$root/usr/lib/systemd/system" "$root/usr/lib/systemd"
# The accounts and state directories in systemd's declarative form
# (postinst creates the same itself, so that it works without systemd).
for kind in sysusers tmpfiles; do
	if [ -f "systemd/herald-$kind.conf" ]; then
		install -d "$root/usr/lib/$kind.d"
		install -m 0644 "systemd/herald-$kind.conf" "$root/usr/lib/$kind.d/herald.conf"
	fi
done

# Configuration. notifications.cfg ships empty: Proxmox's parser rejects
# comment lines, and the file is meant to stay Proxmox-readable
# (README.Debian explains it).
install -d "$root/etc/herald"
[ -f testdata/config/herald.cfg.example ] || die "testdata/config/herald.cfg.example is missing"
install -m 0644 testdata/config/herald.cfg.example "$root/etc/herald/herald.cfg"
install -m 0644 /dev/null "$root/etc/herald/notifications.cfg"

# Documentation and man pages, compressed reproducibly (-n: no name or time).
doc=$root/usr/share/doc/herald
install -d "$doc" "$root/usr/share/man/man8" "$root/usr/share/lintian/overrides"
install -m 0644 "$work/copyright" "$doc/copyright"
install -m 0644 "$pkg/debian/README.Debian" "$doc/README.Debian"
# Uncompressed: the units' Documentation= points at it.
[ -f README.md ] && install -m 0644 README.md "$doc/README.md"
install -m 0644 "$pkg/debian/lintian-overrides" "$root/usr/share/lintian/overrides/herald"
{
	printf 'herald (%s) unstable; urgency=medium\n\n' "$version"
	printf '  * Built from %s.\n\n' "$(git rev-parse --short=12 HEAD 2>/dev/null || echo 'a source tree without git')"
	printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$doc/changelog"
gzip -9n "$doc/changelog"
for m in "$pkg"/man/*.8; do
	install -m 0644 "$m" "$root/usr/share/man/man8/"
	gzip -9n "$root/usr/share/man/man8/$(basename "$m")"
done
install -d "$root/usr/share/man/man5"
for m in "$pkg"/man/*.5; do
	install -m 0644 "$m" "$root/usr/share/man/man5/"
	gzip -9n "$root/usr/share/man/man5/$(basename "$m")"
done
install -d "$root/usr/share/bash-completion/completions"
install -m 0644 "$pkg/bash-completion/herald" "$root/usr/share/bash-completion/completions/herald"
for alias in sendmail mailq newaliases; do
	ln -s herald-sendmail.8.gz "$root/usr/share/man/man8/$alias.8.gz"
done

# Control area.
install -d -m 0755 "$root/DEBIAN"
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\n' | sort | xargs -r md5sum) >"$root/DEBIAN/md5sums"
(cd "$root" && find etc -type f -printf '/%p\n' | sort) >"$root/DEBIAN/conffiles"
# Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, one
# per directory and symlink.
size=$(cd "$root" && find . -path ./DEBIAN -prune -o \( -type f -printf '%s\n' \) -o \( ! -name . -printf '1024\n' \) |
	awk '{ kib += int(($1 + 1023) / 1024) } END { print kib }')
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@MAINTAINER@|$maintainer|" \
	"$pkg/debian/control.in" >"$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums" "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
	sed -e "s|@UNITS@|$units|" "$pkg/debian/$s" >"$root/DEBIAN/$s"
	chmod 0755 "$root/DEBIAN/$s"
done

# Same bytes every time: one timestamp for every file, root ownership,
# dpkg-deb's sorted file list, single-threaded xz (the multi-threaded
# stream depends on the number of CPUs).
find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$outdir"
deb=$outdir/herald_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --threads-max=1 --build "$root" "$deb" >/dev/null
echo "$deb"
