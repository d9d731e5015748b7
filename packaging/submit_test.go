package packaging

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"herald/internal/spool"
	"herald/internal/submit"
)

// submitted is one submission the test's socket server received.
type submitted struct {
	env  spool.Envelope
	body string
}

// recorder is a submit.Spool that keeps what it gets.
type recorder chan submitted

func (r recorder) Submit(env spool.Envelope, body io.Reader, _ int64) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	r <- submitted{env, string(b)}
	return "18ed6006735d0154-903e38b6", nil
}

func (recorder) UserOK(int) error { return nil }

// serveSubmit serves the daemon's submission socket in the test root, as
// herald serve would (0666 in /var/lib/herald/submit, owned by herald),
// and returns what it receives; stop removes it.
func serveSubmit(t *testing.T, dir string, heraldUID int) (got <-chan submitted, stop func()) {
	t.Helper()
	path := filepath.Join(dir, "var/lib/herald", submit.DirName, submit.SocketName)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, heraldUID, -1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	rec := make(recorder, 4)
	srv := submit.New(rec, submit.Options{})
	go func() { _ = srv.Serve(l) }()
	return rec, func() { _ = srv.Shutdown(context.Background()) }
}
