package mmapfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestMap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	data := bytes.Repeat([]byte("0123456789"), Min/10+7)
	const off = 13
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		off, size int64
		ok        bool
	}{
		{"whole", 0, int64(len(data)), true},
		{"after an offset", off, int64(len(data) - off), true},
		{"shorter than the file", 0, int64(len(data) - 1), false},
		{"longer than the file", 0, int64(len(data) + 1), false},
		{"empty", int64(len(data)), 0, false},
		{"negative offset", -1, int64(len(data) + 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Map(path, tt.off, tt.size)
			if !tt.ok {
				if err == nil {
					_ = m.Close()
					t.Fatal("mapped")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := data[tt.off:]
			if !bytes.Equal(m.Bytes, want) {
				t.Fatalf("Bytes: %d bytes, want %d", len(m.Bytes), len(want))
			}
			// Open copies file to file, and reads the mapped bytes only.
			r, err := m.Open()
			if err != nil {
				t.Fatal(err)
			}
			dst, err := os.Create(filepath.Join(t.TempDir(), "copy"))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(dst, r); err != nil || n != int64(len(want)) {
				t.Fatalf("copied %d bytes (%v), want %d", n, err, len(want))
			}
			_ = r.Close()
			_ = dst.Close()
			if got, _ := os.ReadFile(dst.Name()); !bytes.Equal(got, want) {
				t.Fatal("the copy differs")
			}
			if err := m.Close(); err != nil || m.Bytes != nil {
				t.Fatalf("Close: %v, Bytes %d", err, len(m.Bytes))
			}
			if err := m.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := m.Open(); err == nil {
				t.Fatal("Open after Close")
			}
		})
	}
	if _, err := Map(filepath.Join(dir, "missing"), 0, 1); err == nil {
		t.Error("mapped a missing file")
	}
	if err := os.Symlink(path, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if m, err := Map(filepath.Join(dir, "link"), 0, int64(len(data))); err == nil {
		_ = m.Close()
		t.Error("followed a symbolic link")
	}
}
