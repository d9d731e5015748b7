// Command herald-sendmail is herald's /usr/sbin/sendmail drop-in (also
// installed as mailq and newaliases): it queues local mail into herald's
// spool. All the work is in internal/sendmail; this file stays thin so the
// binary imports only what submission needs.
package main

import (
	"fmt"
	"io"
	"os"

	"herald/internal/sendmail"
	"herald/internal/spool"
	"herald/internal/sysexits"
)

func main() {
	// TODO(lead): wire -bs to internal/smtpd's ServeStdio with d as the
	// Submitter.
	sendmail.ServeSMTP = func(in io.Reader, out io.Writer, d *spool.Drop) int {
		fmt.Fprintln(os.Stderr, "sendmail: -bs: not yet wired")
		return sysexits.Software
	}
	os.Exit(sendmail.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
