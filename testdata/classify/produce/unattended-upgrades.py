# Calls unattended-upgrades' own send_summary_mail (2.9.1) with a run's results.
import sys, io, importlib.machinery, importlib.util, apt_pkg
loader = importlib.machinery.SourceFileLoader("uu", "/usr/bin/unattended-upgrade")
spec = importlib.util.spec_from_loader("uu", loader)
uu = importlib.util.module_from_spec(spec); loader.exec_module(uu)
apt_pkg.init_config()
apt_pkg.config.set("Unattended-Upgrade::Mail", "root")
apt_pkg.config.set("Unattended-Upgrade::MailReport", "always")
log = io.StringIO()
if sys.argv[1] == "ok":
    log.write("Starting unattended upgrades script\nAllowed origins are: origin=Debian,codename=bookworm,label=Debian-Security\nPackages that will be upgraded: libssl3 openssl\nWriting dpkg log to /var/log/unattended-upgrades/unattended-upgrades-dpkg.log\nAll upgrades installed\n")
    dpkg = "Log started: 2026-12-02  06:25:12\nSetting up libssl3:amd64 (3.0.15-1~deb12u1) ...\nSetting up openssl (3.0.15-1~deb12u1) ...\nLog ended: 2026-12-02  06:25:20\n"
    uu.send_summary_mail(["libssl3", "openssl"], True, "All upgrades installed", {}, [], [], log, dpkg)
else:
    log.write("Starting unattended upgrades script\nAllowed origins are: origin=Debian,codename=bookworm,label=Debian-Security\nPackages that will be upgraded: linux-image-amd64\nWriting dpkg log to /var/log/unattended-upgrades/unattended-upgrades-dpkg.log\nError in function: \nE: Sub-process /usr/bin/dpkg returned an error code (1)\ndpkg: error processing package linux-image-6.1.0-28-amd64 (--configure):\n installed linux-image-6.1.0-28-amd64 package post-installation script subprocess returned error exit status 1\n")
    dpkg = "Log started: 2026-12-02  06:25:12\nSetting up linux-image-6.1.0-28-amd64 (6.1.119-1) ...\nrun-parts: /etc/kernel/postinst.d/zz-update-grub exited with return code 1\nLog ended: 2026-12-02  06:25:40\n"
    uu.send_summary_mail(["linux-image-6.1.0-28-amd64", "linux-image-amd64"], False, "Installing the upgrades failed!", {"Debian:bookworm-security": ["systemd"]}, [], [], log, dpkg)
