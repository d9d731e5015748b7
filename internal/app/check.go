package app

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"herald/internal/config"
	"herald/internal/recipients"
	"herald/internal/render"
	"herald/internal/target/build"
)

// CheckAll validates every configuration file of p and returns every
// problem of every file at once (herald check): herald.cfg, the
// notifications files, user.cfg, the templates and the targets built from
// them. A problem in one file does not hide those of the next: a broken
// herald.cfg is reported and the rest is read with its defaults. A named
// configuration directory that does not exist is an error. s is nil when
// there are errors.
func CheckAll(p Paths, shimPaths []string) (s *Settings, ds config.Diagnostics) {
	if !p.Embedded {
		if fi, err := os.Stat(p.ConfigDir); err != nil || !fi.IsDir() {
			return nil, config.Diagnostics{{File: p.ConfigDir, Msg: "configuration directory does not exist"}}
		}
	}
	s, err := LoadSettings(p, shimPaths)
	if err == nil {
		warns, err := CheckTargets(s)
		if err != nil {
			return nil, Diagnostics(err)
		}
		if len(warns) > 0 {
			s.Notify.Warnings = append(s.Notify.Warnings, warns...)
		}
		return s, nil
	}
	// Something is wrong: look at each file on its own.
	d, err := config.LoadDaemon(filepath.Join(p.ConfigDir, "herald.cfg"))
	if err != nil {
		ds = append(ds, Diagnostics(err)...)
		d = config.DefaultDaemon()
	}
	cfg, err := config.Load(p.ConfigDir, config.LoadOptions{Flavor: d.Flavor, PublicPath: d.NotificationsFile,
		PrivatePath: d.NotificationsPrivFile, ShimPaths: shimPaths})
	if p.Embedded {
		cfg, err = nil, nil // the embedded notifications config is built in
	}
	if err != nil {
		ds = append(ds, Diagnostics(err)...)
	} else if cfg != nil {
		ds = append(ds, cfg.Warnings...) // every problem at once, warnings too
	}
	if _, err := recipients.LoadUsers(filepath.Join(p.ConfigDir, build.UsersFile)); err != nil {
		ds = append(ds, config.Diagnostic{File: filepath.Join(p.ConfigDir, build.UsersFile), Msg: err.Error()})
	}
	if _, err := render.New(filepath.Join(p.ConfigDir, build.TemplatesDir)); err != nil {
		ds = append(ds, Diagnostics(build.TemplateDiag(err))...)
	}
	if cfg != nil {
		resolveMailName(d)
		if _, _, err := buildTargets(&Settings{Paths: p, Daemon: d, Notify: cfg, ShimPaths: shimPaths}, slog.New(slog.DiscardHandler), build.Env{}); err != nil {
			for _, x := range Diagnostics(err) {
				if !containsDiag(ds, x) {
					ds = append(ds, x)
				}
			}
		}
	}
	if len(ds) == 0 {
		ds = append(ds, config.Diagnostic{File: p.ConfigDir, Msg: fmt.Sprintf("configuration is invalid: %v", err)})
	}
	return nil, ds
}

func containsDiag(ds config.Diagnostics, d config.Diagnostic) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}
