// Command herald-mbox-create is herald's privileged mailbox helper: it reads
// one user name from stdin and creates /var/mail/USER owned by that user,
// group mail, mode 0660, unless it exists; it answers "ok" or
// "error: REASON" on stdout. It does nothing else: it never writes into a
// mailbox. systemd runs it per connection on herald-mbox.socket (which only
// the herald group may reach), as root with only CAP_CHOWN and
// CAP_DAC_OVERRIDE. The work is in internal/mailbox.
package main

import (
	"fmt"
	"os"

	"herald/internal/mailbox"
)

// dir is fixed at build time, never taken from the caller: the helper runs
// as root.
var dir = mailbox.DefaultDir

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: herald-mbox-create < USERNAME (one line; run by herald-mbox@.service)")
		os.Exit(64)
	}
	if err := mailbox.Serve(os.Stdin, os.Stdout, dir); err != nil {
		// The journal gets the reason too.
		fmt.Fprintln(os.Stderr, "herald-mbox-create:", err)
		os.Exit(1)
	}
}
