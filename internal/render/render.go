// Package render turns an event into the title and body a target shows,
// from per-type Handlebars templates: TYPE-subject.txt.hbs and
// TYPE-body.txt.hbs, falling back to default-subject/default-body. Users
// override any of them in a templates directory next to the configuration
// (/etc/herald/templates); the built-in ones are compiled into the binary,
// so upgrades never touch the user's files. The names follow Proxmox's
// template files.
package render

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"herald/internal/event"
	"herald/internal/handlebars"
)

//go:embed templates/*.hbs
var builtinFS embed.FS

// Kinds of template.
const (
	subject = "subject"
	body    = "body"
)

// Renderer renders titles and bodies. It is immutable after New and safe
// for concurrent use.
type Renderer struct {
	builtin  map[string]*handlebars.Template
	override map[string]*handlebars.Template
}

// Error is a template that does not parse, with its file and position.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: column %d: %s", e.File, e.Line, e.Col, e.Msg)
}

// New loads the built-in templates and every *.hbs file of overrideDir
// (which may be missing). A template that does not parse is an error naming
// its file and line.
func New(overrideDir string) (*Renderer, error) {
	r := &Renderer{builtin: map[string]*handlebars.Template{}, override: map[string]*handlebars.Template{}}
	if err := load(builtinFS, "templates", "<builtin>/", r.builtin); err != nil {
		return nil, err
	}
	if overrideDir != "" {
		if _, err := os.Stat(overrideDir); err == nil {
			if err := load(os.DirFS(overrideDir), ".", overrideDir+"/", r.override); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return r, nil
}

func load(fsys fs.FS, dir, label string, into map[string]*handlebars.Template) error {
	names, err := fs.Glob(fsys, filepath.Join(dir, "*.txt.hbs"))
	if err != nil {
		return err
	}
	for _, n := range names {
		src, err := fs.ReadFile(fsys, n)
		if err != nil {
			return err
		}
		t, err := handlebars.Parse(string(src))
		if err != nil {
			var he *handlebars.Error
			if errors.As(err, &he) {
				return &Error{File: label + filepath.Base(n), Line: he.Line, Col: he.Col, Msg: he.Msg}
			}
			return fmt.Errorf("%s%s: %w", label, filepath.Base(n), err)
		}
		into[strings.TrimSuffix(filepath.Base(n), ".txt.hbs")] = t
	}
	return nil
}

// lookup finds TYPE-KIND, then default-KIND: an override before a built-in
// at each step, so a user's default-body.txt.hbs does not hide herald's own
// delivery-failed body unless the user overrides that one too.
func (r *Renderer) lookup(typ, kind string) []*handlebars.Template {
	var out []*handlebars.Template
	for _, name := range []string{typ + "-" + kind, "default-" + kind} {
		if t := r.override[name]; t != nil {
			out = append(out, t)
		}
		if t := r.builtin[name]; t != nil {
			out = append(out, t)
		}
	}
	return out
}

// Data is what templates see: Proxmox's webhook data plus hostname, type
// and a readable timestamp.
func Data(ev *event.Event) map[string]any {
	fields := map[string]any{}
	for k, v := range ev.Fields {
		fields[k] = v
	}
	return map[string]any{
		"title":          ev.Title,
		"message":        ev.Body,
		"severity":       ev.Severity.String(),
		"timestamp":      ev.Timestamp.Unix(),
		"timestamp-text": ev.Timestamp.Local().Format(time.DateTime),
		"fields":         fields,
		"hostname":       ev.Fields[event.FieldHostname],
		"type":           ev.Type(),
		"id":             ev.ID,
	}
}

// Render returns a copy of ev whose title and body come from the templates
// of its type. A template that fails to render falls back to the next one
// (as Proxmox falls back from an override to the vendor file); the subject
// has its newlines turned into spaces.
func (r *Renderer) Render(ev *event.Event) *event.Event {
	out := *ev
	data := Data(ev)
	out.Title = strings.TrimRight(strings.ReplaceAll(r.first(ev.Type(), subject, data, ev.Title), "\n", " "), " ")
	out.Body = r.first(ev.Type(), body, data, ev.Body)
	return &out
}

func (r *Renderer) first(typ, kind string, data map[string]any, fallback string) string {
	for _, t := range r.lookup(typ, kind) {
		s, err := t.Render(data)
		if err == nil {
			// A template file ends in a newline of its own; without this the
			// default body "{{ message }}\n" would add one to every message.
			return strings.TrimSuffix(s, "\n")
		}
	}
	return fallback
}
