package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"herald/internal/event"
)

func ev(typ, title, body string) *event.Event {
	return &event.Event{ID: "e1", Timestamp: time.Date(2026, 11, 21, 3, 0, 0, 0, time.UTC), Severity: event.Error,
		Title: title, Body: body, Fields: map[string]string{"type": typ, "hostname": "pve1", "job-id": "nightly"}}
}

func TestDefaultsKeepTitleAndBody(t *testing.T) {
	r, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"line\n", "no newline", "", "a\n\nb\n\n"} {
		in := ev("vzdump", "backup failed", body)
		out := r.Render(in)
		if out.Title != "backup failed" || out.Body != body {
			t.Errorf("body %q: got title %q body %q", body, out.Title, out.Body)
		}
		if in.Body != body {
			t.Fatal("Render changed its input")
		}
	}
}

func TestBuiltinDeliveryFailed(t *testing.T) {
	r, _ := New("")
	e := ev("delivery-failed", "x", "herald gave up.\n")
	e.Fields["target"], e.Fields["event-id"], e.Fields["delivery-id"] = "phone", "abc", "abc.phone"
	out := r.Render(e)
	if out.Title != "x" {
		t.Fatalf("title %q", out.Title)
	}
	if !strings.Contains(out.Body, "herald queue show abc.phone") || !strings.HasPrefix(out.Body, "herald gave up.") {
		t.Fatalf("body %q", out.Body)
	}
}

func TestOverridesPerTypeAndFallback(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vzdump-subject.txt.hbs", "[{{ severity }}] {{ fields.job-id }}\non {{ hostname }}\n")
	write("default-body.txt.hbs", "{{ message }}\n-- {{ type }}\n")
	// An override that fails at render time falls back to the built-in.
	write("gc-subject.txt.hbs", "{{ json }}\n")
	r, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := r.Render(ev("vzdump", "t", "b"))
	if out.Title != "[error] nightly on pve1" || out.Body != "b\n-- vzdump" {
		t.Fatalf("title %q body %q", out.Title, out.Body)
	}
	if out := r.Render(ev("gc", "gc title", "b")); out.Title != "gc title" {
		t.Fatalf("failing override: title %q", out.Title)
	}
}

func TestBrokenOverrideNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vzdump-body.txt.hbs"), []byte("ok\n{{#if x}}\nunclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "vzdump-body.txt.hbs")+":") {
		t.Fatalf("err = %v", err)
	}
}
