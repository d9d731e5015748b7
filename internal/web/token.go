package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"herald/internal/safeio"
)

// TokenFile is the file in the state directory that holds the status
// page's access token (mode 0600: the daemon's user and root).
const TokenFile = "web-token"

// LoadOrCreateToken returns the status page's token for stateDir, creating
// it on first use. The daemon and `herald web` both call it; whichever comes
// first creates the token, and a link(2) that never replaces an existing
// file makes them agree on one even when they race.
func LoadOrCreateToken(stateDir string) (string, error) {
	path := filepath.Join(stateDir, TokenFile)
	if tok, err := readToken(path); err == nil {
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(stateDir, safeio.TempPrefix+"web-token-")
	if err != nil {
		return "", fmt.Errorf("web token: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		err = chownLikeDir(tmp, stateDir)
	}
	if err == nil {
		_, err = tmp.WriteString(hex.EncodeToString(b[:]) + "\n")
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("web token: %w", err)
		}
	} else {
		_ = tmp.Close()
		return "", fmt.Errorf("web token: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("web token: %w", err)
	}
	if err := safeio.SyncDir(stateDir); err != nil {
		return "", fmt.Errorf("web token: %w", err)
	}
	return readToken(path)
}

// chownLikeDir gives f the owner of dir when we are root: `herald web` run
// by root before the daemon ever ran must leave a token the daemon's own
// user can read.
func chownLikeDir(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return "", fmt.Errorf("web token %s is too short; remove it and a new one is made", path)
	}
	return tok, nil
}
