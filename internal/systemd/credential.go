package systemd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Credential returns the content of the systemd credential NAME, the file
// $CREDENTIALS_DIRECTORY/NAME that LoadCredential= or
// LoadCredentialEncrypted= provides. ok is false when there is no
// credentials directory or no such credential. The content is returned as
// stored, a trailing newline included: whether to trim it is the caller's
// decision. Errors name the file, never its content.
func Credential(name string) (value []byte, ok bool, err error) {
	if !validCredentialName(name) {
		return nil, false, fmt.Errorf("credential %q: invalid name (want a plain file name)", name)
	}
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return nil, false, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("credential %q: %w", name, err)
	}
	return b, true, nil
}

// validCredentialName accepts what systemd accepts as a credential name: a
// single path component of at most 255 bytes without control characters,
// quotes or backslashes (credential_name_valid in systemd), so a name can
// never reach outside the credentials directory.
func validCredentialName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool {
		return r == '/' || r < 0x20 || r == 0x7f || r == '"' || r == '\'' || r == '\\'
	})
}
