package cli

import (
	"fmt"
	"strings"

	"herald/internal/app"
)

// complete prints candidates for the bash completion script
// (packaging/bash-completion/herald): `herald __complete commands|targets|
// deliveries|events`, one per line. It reads what it can and prints
// nothing on errors: a completion must never complain.
func (e env) complete(args []string) int {
	if len(args) != 1 {
		return 0
	}
	paths := app.ResolveAdmin("", "")
	switch args[0] {
	case "commands":
		fmt.Fprintln(e.stdout, strings.Join(commandNames(), "\n"))
	case "targets":
		s, err := app.LoadSettings(paths, nil)
		if err != nil {
			return 0
		}
		for _, t := range s.Notify.Targets {
			fmt.Fprintln(e.stdout, t.Name)
		}
	case "deliveries", "events":
		adm, closeAdm, err := app.OpenQueueAdmin(paths.StateDir)
		if err != nil {
			return 0
		}
		defer closeAdm()
		ds, err := adm.List()
		if err != nil {
			return 0
		}
		seen := map[string]bool{}
		for _, d := range ds {
			v := d.ID
			if args[0] == "events" {
				v = d.EventID
			}
			if !seen[v] {
				seen[v] = true
				fmt.Fprintln(e.stdout, v)
			}
		}
	}
	return 0
}
