package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/config")

const testdataDir = "../../testdata/config"

// cases lists NAME.cfg files of a directory, leaving out private files.
func cases(t *testing.T, dir string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, ".priv.cfg") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no test configs in %s", dir)
	}
	return out
}

func readIfExists(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// installConfig copies NAME.cfg (and NAME.priv.cfg, chmod 600: git does
// not keep file modes) into a fresh directory as herald would find them.
func installConfig(t *testing.T, cfgPath string) string {
	t.Helper()
	dir := t.TempDir()
	pub, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notifications.cfg"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if priv := readIfExists(t, strings.TrimSuffix(cfgPath, ".cfg")+".priv.cfg"); priv != nil {
		p := filepath.Join(dir, "notifications-priv.cfg")
		if err := os.WriteFile(p, priv, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o600); err != nil { // in case of a umask surprise
			t.Fatal(err)
		}
	}
	return dir
}

func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", golden, got, want)
	}
}

// TestGoodConfigs loads every testdata/config/NAME.cfg through Load and
// compares the resulting configuration (as JSON) with NAME.json.
func TestGoodConfigs(t *testing.T) {
	for _, path := range cases(t, testdataDir) {
		name := strings.TrimSuffix(filepath.Base(path), ".cfg")
		t.Run(name, func(t *testing.T) {
			dir := installConfig(t, path)
			opt := LoadOptions{}
			if strings.HasPrefix(name, "pbs-") {
				opt.Flavor = FlavorPBS
			}
			cfg, err := Load(dir, opt)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", name, err)
			}
			out, err := json.MarshalIndent(cfg, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = bytes.ReplaceAll(out, []byte(dir+"/"), nil)
			compareGolden(t, strings.TrimSuffix(path, ".cfg")+".json", append(out, '\n'))
		})
	}
}

// TestBrokenConfigs parses every testdata/config/broken/NAME.cfg (with
// NAME.priv.cfg as its private file, if present) and compares the
// diagnostics with NAME.err.
func TestBrokenConfigs(t *testing.T) {
	dir := filepath.Join(testdataDir, "broken")
	for _, path := range cases(t, dir) {
		name := strings.TrimSuffix(filepath.Base(path), ".cfg")
		t.Run(name, func(t *testing.T) {
			pub, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			privPath := strings.TrimSuffix(path, ".cfg") + ".priv.cfg"
			priv := readIfExists(t, privPath)
			cfg, err := Parse(name+".cfg", pub, name+".priv.cfg", priv, LoadOptions{})
			if err == nil {
				t.Fatalf("Parse(%s) succeeded, want errors; warnings: %v", name, cfg.Warnings)
			}
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("error is %T, want Diagnostics", err)
			}
			if !ds.HasErrors() {
				t.Fatalf("Diagnostics without an error: %v", ds)
			}
			lines := map[string]int{
				name + ".cfg":      bytes.Count(pub, []byte("\n")) + 1,
				name + ".priv.cfg": bytes.Count(priv, []byte("\n")) + 1,
			}
			for _, d := range ds {
				if max, ok := lines[d.File]; !ok || d.Line < 0 || d.Line > max {
					t.Errorf("diagnostic outside the input: %v", d)
				}
			}
			compareGolden(t, strings.TrimSuffix(path, ".cfg")+".err", []byte(ds.Error()+"\n"))
		})
	}
}

// TestCompatConfigs loads every testdata/config/compat/NAME.cfg (with
// NAME.priv.cfg, if present): real-world-shaped files that Proxmox loads,
// so herald loads them too. NAME.warn holds the warnings and the broken
// targets; the loaded config must not route to targets Proxmox would not
// instantiate.
func TestCompatConfigs(t *testing.T) {
	dir := filepath.Join(testdataDir, "compat")
	for _, path := range cases(t, dir) {
		name := strings.TrimSuffix(filepath.Base(path), ".cfg")
		t.Run(name, func(t *testing.T) {
			pub, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			priv := readIfExists(t, strings.TrimSuffix(path, ".cfg")+".priv.cfg")
			cfg, err := Parse(name+".cfg", pub, name+".priv.cfg", priv, LoadOptions{})
			if err != nil {
				t.Fatalf("Parse(%s) refused a file Proxmox loads:\n%v", name, err)
			}
			var b strings.Builder
			for _, w := range cfg.Warnings {
				b.WriteString(w.Error() + "\n")
			}
			for _, br := range cfg.Broken {
				fmt.Fprintf(&b, "broken %s: %s\n", br.Name, br.Reason)
			}
			names := make([]string, len(cfg.Targets))
			for i, tg := range cfg.Targets {
				names[i] = tg.Name
			}
			fmt.Fprintf(&b, "targets: %s\n", strings.Join(names, " "))
			compareGolden(t, strings.TrimSuffix(path, ".cfg")+".warn", []byte(b.String()))
		})
	}
}
