// Package packaging holds no code: it is the home of herald's Debian
// packaging and of the test that proves it, so that `go test ./...` builds
// and checks the .deb like every other part of herald.
//
// scripts/build-deb.sh builds dist/herald_VERSION_ARCH.deb from this tree
// with plain dpkg-deb: the control file, maintainer scripts, copyright and
// README.Debian are in debian/, the man pages in man/, the units in
// ../systemd. test-root.sh makes (and caches) the minimal Debian root that
// the test installs the package into. lintian-notes.md explains every
// lintian override.
//
// deb_test.go builds the package twice from a snapshot of the tree and
// requires identical bytes, checks its contents and control fields, runs
// lintian, and installs, uses and purges it in a throwaway chroot: sendmail
// as root and as an unprivileged user, the spool's permission model, the
// setgid statoverride, the users and the enabled units.
//
// prometheus/ and alertmanager/ hold the examples for fleets (README, "Many
// hosts"): alerting rules on herald's metrics with their promtool unit
// tests, and an Alertmanager route for the labels herald's alertmanager
// target sends. examples_test.go checks both with promtool and amtool.
package packaging
