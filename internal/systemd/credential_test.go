package systemd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredential(t *testing.T) {
	dir := t.TempDir()
	const secret = "hunter2-s3cr3t\n"
	if err := os.WriteFile(filepath.Join(dir, "smtp-relay-password"), []byte(secret), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o400); err != nil {
		t.Fatal(err)
	}
	// A credential that exists but cannot be read as a file.
	if err := os.Mkdir(filepath.Join(dir, "a-directory"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Outside the credentials directory: must never be reachable.
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "outside"), []byte("no"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		dir     string
		cred    string
		want    string
		wantOK  bool
		wantErr string
	}{
		{"present, newline kept", dir, "smtp-relay-password", secret, true, ""},
		{"empty credential", dir, "empty", "", true, ""},
		{"absent", dir, "gotify-token", "", false, ""},
		{"no credentials directory", "", "smtp-relay-password", "", false, ""},
		{"directory missing", filepath.Join(dir, "nope"), "smtp-relay-password", "", false, ""},
		{"unreadable", dir, "a-directory", "", false, `credential "a-directory"`},
		{"empty name", dir, "", "", false, "invalid name"},
		{"dot", dir, ".", "", false, "invalid name"},
		{"dotdot", dir, "..", "", false, "invalid name"},
		{"escape", dir, "../outside", "", false, "invalid name"},
		{"slash", dir, "a/b", "", false, "invalid name"},
		{"control", dir, "a\nb", "", false, "invalid name"},
		{"quote", dir, `a"b`, "", false, "invalid name"},
		{"too long", dir, strings.Repeat("x", 256), "", false, "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CREDENTIALS_DIRECTORY", tt.dir)
			got, ok, err := Credential(tt.cred)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Credential(%q) error = %v, want one containing %q", tt.cred, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(secret)) {
					t.Fatalf("error %q contains the secret", err)
				}
			} else if err != nil {
				t.Fatalf("Credential(%q) error = %v", tt.cred, err)
			}
			if ok != tt.wantOK || string(got) != tt.want {
				t.Fatalf("Credential(%q) = %q, %v; want %q, %v", tt.cred, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
