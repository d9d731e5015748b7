// Package ldaptest runs a real OpenLDAP slapd for tests: its own config and
// database in a temporary directory, on a loopback port, with a stoney-like
// schema (the three sst* attributes) and entries for each of stoney
// backup's rules, and a test CA for StartTLS. slapd comes from Debian's
// slapd package (scripts/install-test-deps.sh installs it); the server is
// never a system service.
package ldaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"fmt"
	"herald/internal/testkit"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

//go:embed testdata/stoney.schema
var schema []byte

//go:embed testdata/stoney.ldif
var data []byte

// Fixed names of the test directory.
const (
	Base         = "dc=stoney,dc=test"
	AccountBase  = "ou=accounts,dc=stoney,dc=test"
	PersonBase   = "ou=people,dc=stoney,dc=test"
	BindDN       = "cn=herald,dc=stoney,dc=test"
	BindPassword = "bind-pw-Zq8x!never-printed"
)

// Server is one running (or stopped) slapd.
type Server struct {
	Port    int
	URL     string // ldap://127.0.0.1:PORT
	TLSURL  string // ldaps://127.0.0.1:TLSPORT
	CAFile  string // PEM of the CA that signed the server certificate
	tlsPort int

	t    testing.TB
	dir  string
	conf string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// Binary finds slapd, failing the test with how to install it.
func Binary(t testing.TB) string {
	t.Helper()
	return testkit.Tool(t, "slapd", "slapd", "/usr/sbin/slapd", "/usr/local/sbin/slapd")
}

// Start writes a config, loads the entries and starts slapd; the test's
// cleanup stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{t: t, dir: dir, log: &bytes.Buffer{}}
	s.Port = freePort(t)
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.Port)
	s.tlsPort = freePort(t)
	s.TLSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.tlsPort)
	s.CAFile = filepath.Join(dir, "ca.pem")
	writeCerts(t, dir)
	must(t, os.WriteFile(filepath.Join(dir, "stoney.schema"), schema, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "stoney.ldif"), data, 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "db"), 0o700))
	s.conf = filepath.Join(dir, "slapd.conf")
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %[1]s/stoney.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/server.pem
TLSCertificateKeyFile %[1]s/server.key
database mdb
maxsize 10485760
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
access to * by * read
`, dir, Base, BindDN, BindPassword)
	must(t, os.WriteFile(s.conf, []byte(conf), 0o600))
	add := exec.Command(filepath.Join(filepath.Dir(bin), "slapadd"), "-f", s.conf, "-l", filepath.Join(dir, "stoney.ldif"))
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the (stopped) server again on the same port and waits until
// it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	// -d 0: stay in the foreground (so the test owns the process) and log
	// nothing but errors.
	s.cmd = exec.Command(Binary(s.t), "-f", s.conf, "-h", s.URL+"/ "+s.TLSURL+"/", "-d", "0")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start slapd: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("slapd did not accept connections on port %d within 10s: %v\n%s", s.Port, err, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// writeCerts makes a CA and a server certificate for 127.0.0.1/localhost.
func writeCerts(t testing.TB, dir string) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(caDER)
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "server.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
