// Command herald is the daemon and admin CLI of herald, a local MTA
// replacement that turns mail into routed notifications.
package main

import (
	"os"

	"herald/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
