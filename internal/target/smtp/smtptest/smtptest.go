// Package smtptest runs an in-process go-smtp server on loopback for tests
// of herald's mail targets: plain, STARTTLS or implicit TLS with a throwaway
// CA, optional AUTH PLAIN/LOGIN with a user table, and hooks that make MAIL,
// RCPT or DATA fail on demand. It records every accepted message.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// Modes of Config.Mode.
const (
	Insecure = "insecure"
	STARTTLS = "starttls"
	TLS      = "tls"
)

// Config describes the server.
type Config struct {
	Mode string // Insecure (default), STARTTLS (offered, not required) or TLS (implicit)
	// Users enables AUTH with these user → password pairs.
	Users map[string]string
	// Mechs are the AUTH mechanisms offered (default PLAIN and LOGIN).
	Mechs []string
	// AllowInsecureAuth offers AUTH without TLS.
	AllowInsecureAuth bool
	// SMTPUTF8 advertises the SMTPUTF8 extension.
	SMTPUTF8 bool
	// Hooks: a non-nil error becomes the reply (use *gosmtp.SMTPError).
	Mail func(from string) error
	Rcpt func(to string) error
	Data func(msg []byte) error
}

// Message is one accepted mail.
type Message struct {
	Helo     string
	TLS      bool
	AuthUser string
	From     string
	To       []string
	Data     []byte
}

// Server is a running test server.
type Server struct {
	Host string // "127.0.0.1"
	Port int
	CA   *CA

	cfg  Config
	mu   sync.Mutex
	msgs []Message
	// authFailures counts rejected AUTH attempts.
	authFailures int
}

// Start runs a server until the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Mode == "" {
		cfg.Mode = Insecure
	}
	if cfg.Mechs == nil {
		cfg.Mechs = []string{sasl.Plain, sasl.Login}
	}
	s := &Server{cfg: cfg, CA: NewCA(t)}
	cert := s.CA.Leaf(t, "localhost", "127.0.0.1", "::1")
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{s: s, msg: Message{Helo: c.Hostname(), TLS: isTLS}}, nil
	}))
	srv.Domain = "smtptest.localhost"
	srv.AllowInsecureAuth = cfg.AllowInsecureAuth
	srv.EnableSMTPUTF8 = cfg.SMTPUTF8
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	switch cfg.Mode {
	case STARTTLS:
		srv.TLSConfig = tlsCfg
	case TLS:
		l = tls.NewListener(l, tlsCfg)
	}
	addr := l.Addr().(*net.TCPAddr)
	s.Host, s.Port = "127.0.0.1", addr.Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, gosmtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("smtptest: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil && !errors.Is(err, gosmtp.ErrServerClosed) {
			t.Errorf("smtptest: close: %v", err)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("smtptest: server did not stop within 5s")
		}
	})
	return s
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// ClientTLS returns a client configuration that trusts the server's CA.
func (s *Server) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.CA.Pool, MinVersion: tls.VersionTLS12}
}

// Messages returns the accepted messages so far. The server records a
// message before it replies to the final dot, so a client that got its 250
// finds it here.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// AuthFailures returns the number of rejected AUTH attempts.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFailures
}

type session struct {
	s   *Server
	msg Message
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.cfg.Users == nil {
		return nil
	}
	return ss.s.cfg.Mechs
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.cfg.Users == nil || !slices.Contains(ss.s.cfg.Mechs, mech) {
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
	check := func(user, pass string) error {
		if want, ok := ss.s.cfg.Users[user]; ok && want == pass {
			ss.msg.AuthUser = user
			return nil
		}
		ss.s.mu.Lock()
		ss.s.authFailures++
		ss.s.mu.Unlock()
		return gosmtp.ErrAuthFailed
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return gosmtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

// loginServer is the server side of AUTH LOGIN (go-sasl has only a client):
// it asks "Username:" and "Password:" like most servers do.
type loginServer struct {
	check      func(user, pass string) error
	step       int
	user, pass string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response = user name
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.pass = string(response)
		l.step++
		return nil, true, l.check(l.user, l.pass)
	}
	return nil, false, errors.New("unexpected AUTH LOGIN response")
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if ss.s.cfg.Users != nil && ss.msg.AuthUser == "" {
		return gosmtp.ErrAuthRequired
	}
	if ss.s.cfg.Mail != nil {
		if err := ss.s.cfg.Mail(from); err != nil {
			return err
		}
	}
	ss.msg.From = from
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if ss.s.cfg.Rcpt != nil {
		if err := ss.s.cfg.Rcpt(to); err != nil {
			return err
		}
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.s.cfg.Data != nil {
		if err := ss.s.cfg.Data(b); err != nil {
			return err
		}
	}
	m := ss.msg
	m.To = slices.Clone(m.To)
	m.Data = b
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, m)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset() {
	ss.msg.From, ss.msg.To = "", nil
}

func (ss *session) Logout() error { return nil }

// CA is a throwaway certificate authority.
type CA struct {
	Pool *x509.CertPool
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA valid for the next hour.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herald test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Pool: pool, cert: cert, key: key}
}

// PEM returns the CA's certificate in PEM form, as a CA file holds it.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Leaf issues a server certificate for the given names and IP addresses.
func (ca *CA) Leaf(t testing.TB, hosts ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TempFailOnce returns a Rcpt hook that answers 451 the first time it sees
// each recipient in fail and accepts it afterwards.
func TempFailOnce(fail ...string) func(string) error {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(to string) error {
		mu.Lock()
		defer mu.Unlock()
		if slices.Contains(fail, to) && !seen[to] {
			seen[to] = true
			return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}
}

// Reject returns a hook that refuses the listed values with code and accepts
// the rest.
func Reject(code int, values ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(values, v) {
			return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{code / 100, 1, 1}, Message: "rejected " + v}
		}
		return nil
	}
}
