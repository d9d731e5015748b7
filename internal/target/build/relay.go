package build

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"herald/internal/config"
	"herald/internal/target"
	"herald/internal/target/relay"
	"herald/internal/target/sendmail"
	"herald/internal/target/smtp"
)

// relaySettings is the smarthost of herald.cfg for sendmail targets, nil
// when none is set. The password comes from relay-password-file (which,
// like the private notifications file, must not be readable by others).
func relaySettings(d *config.Daemon) (*sendmail.Relay, error) {
	if d.Relay == "" {
		return nil, nil
	}
	host, portText := splitHostPortLoose(d.Relay)
	port := 0
	if portText != "" {
		var err error
		if port, err = strconv.Atoi(portText); err != nil {
			return nil, fmt.Errorf("relay %q: bad port", d.Relay)
		}
	}
	tlsConfig, err := relayTLS(d)
	if err != nil {
		return nil, err
	}
	r := &sendmail.Relay{Host: host, Port: port, Mode: d.RelayMode, Username: d.RelayUsername, TLSConfig: tlsConfig}
	if d.RelayPasswordFile != "" {
		fi, err := os.Stat(d.RelayPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("relay-password-file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("relay-password-file %s: permissions %#o expose the password: run chmod 600 %s",
				d.RelayPasswordFile, fi.Mode().Perm(), d.RelayPasswordFile)
		}
		pw, err := os.ReadFile(d.RelayPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("relay-password-file: %w", err)
		}
		r.Password = config.NewSecret(strings.TrimRight(string(pw), "\r\n"))
	}
	return r, nil
}

// addRelay adds the built-in relay target when herald.cfg sets a relay. A
// configured target of the reserved name is an error.
func (b builder) addRelay(out map[string]target.Target) error {
	if sec := b.in.Notify.Target(relay.Name); sec != nil {
		return config.Diagnostics{{File: sec.File, Line: sec.Line,
			Msg: fmt.Sprintf("target name %s is reserved: herald relays mail for remote recipients under it", relay.Name)}}
	}
	r := b.relaySettings // read once per build by newBuilder
	if r == nil {
		return nil
	}
	if err := checkRelayNotSelf(b.in.Daemon, r.Host, r.Port, r.Mode); err != nil {
		return config.Diagnostics{{File: b.in.Daemon.File, Msg: err.Error()}}
	}
	st, err := smtp.New(smtp.Options{
		Server: r.Host, Port: r.Port, Mode: r.Mode, Username: r.Username, Password: r.Password,
		From: "root", Hostname: b.mailName(), TLSConfig: r.TLSConfig, Log: b.log,
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	out[relay.Name] = relay.New(st, b.in.localDomains().IsLocal, b.mailName())
	return nil
}

// checkRelayNotSelf refuses a relay that is herald's own SMTP listener:
// every relayed mail would come back as remote mail, forever.
func checkRelayNotSelf(d *config.Daemon, host string, port int, mode string) error {
	if port == 0 {
		port = map[string]int{smtp.ModeInsecure: 25, smtp.ModeSTARTTLS: 587, smtp.ModeTLS: 465}[mode]
	}
	loopback := strings.EqualFold(host, "localhost")
	if ip, err := netip.ParseAddr(host); err == nil {
		loopback = ip.IsLoopback() || ip.IsUnspecified()
	}
	if !loopback {
		return nil
	}
	for _, l := range d.SMTPListen {
		if int(l.Port()) == port {
			return fmt.Errorf("relay %s is herald's own smtp-listen %s: relayed mail would loop back; set relay to the smarthost", d.Relay, l)
		}
	}
	return nil
}

// relayTLS is the TLS configuration towards the relay: relay-ca-file's
// roots instead of the system's, and no verification at all with
// relay-verify no. nil means the defaults.
func relayTLS(d *config.Daemon) (*tls.Config, error) {
	if d.RelayCAFile == "" && !d.RelayNoVerify {
		return nil, nil
	}
	host, _ := splitHostPortLoose(d.Relay)
	c := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if d.RelayNoVerify {
		c.InsecureSkipVerify = true // the admin's explicit choice: relay-verify no
	}
	if d.RelayCAFile != "" {
		pem, err := os.ReadFile(d.RelayCAFile)
		if err != nil {
			return nil, fmt.Errorf("relay-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("relay-ca-file %s: no PEM certificate in it", d.RelayCAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// splitHostPortLoose splits host:port, or returns a bare host (brackets of
// an IPv6 literal removed) with an empty port.
func splitHostPortLoose(v string) (host, port string) {
	if h, p, err := net.SplitHostPort(v); err == nil {
		return h, p
	}
	return strings.Trim(v, "[]"), ""
}
