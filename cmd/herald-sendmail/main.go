// Command herald-sendmail is herald's /usr/sbin/sendmail drop-in (also
// installed as mailq and newaliases): it queues local mail into herald's
// spool. All the work is in internal/shim; this file stays thin so the
// binary imports only what submission needs.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"herald/internal/shim"
	"herald/internal/smtpd"
	"herald/internal/spool"
	"herald/internal/sysexits"
)

func main() {
	// -bs: one SMTP session on stdin/stdout, submitting into the maildrop
	// like any other shim call (PHP frameworks speak SMTP to sendmail -bs).
	shim.ServeSMTP = func(in io.Reader, out io.Writer, d *spool.Drop) int {
		if err := smtpd.ServeStdio(context.Background(), in, out, d, smtpd.Options{Hostname: shim.MailName()}); err != nil {
			fmt.Fprintln(os.Stderr, "sendmail -bs:", err)
			return sysexits.IOErr
		}
		return sysexits.OK
	}
	os.Exit(shim.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
