package shim

import (
	"strings"

	"herald/internal/sysexits"
)

// Mode is what one invocation of the shim does.
type Mode int

// The modes, selected by -b, -q, -I or the program name.
const (
	// ModeDeliver (-bm, the default) reads a message from stdin and queues it.
	ModeDeliver Mode = iota
	// ModeSMTP (-bs) speaks SMTP on stdin/stdout.
	ModeSMTP
	// ModeList (-bp, mailq) lists the queue.
	ModeList
	// ModeAliases (-bi, -I, newaliases) validates the aliases file and
	// prints what it defines: herald keeps no alias database.
	ModeAliases
	// ModeRunQueue (-q) asks the daemon to run its delivery queue now.
	ModeRunQueue
)

// Options is a parsed command line.
type Options struct {
	Mode Mode
	// ExtractRecipients (-t): recipients from the To, Cc and Bcc headers,
	// added to those on the command line.
	ExtractRecipients bool
	// IgnoreDots (-i, -oi): a line holding only "." does not end the input.
	IgnoreDots bool
	// Sender (-f, -r) is the envelope sender; SenderSet says it was given
	// ("" then means the null sender <>).
	Sender    string
	SenderSet bool
	// FullName (-F) is the sender's display name for an added From header.
	FullName string
	// Verbose (-v) reports what happened on stderr.
	Verbose bool
	// Recipients from the command line, comma-separated lists split.
	Recipients []string
}

// UsageError is a command-line error; the shim exits with 64 (EX_USAGE).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ExitCode returns sysexits.Usage.
func (e *UsageError) ExitCode() int { return sysexits.Usage }

// optArg says, for each option letter Postfix's sendmail accepts (its getopt
// string "B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx", plus sendmail 8's -A),
// whether it takes a value. -q is special: its value is optional and only
// ever attached (-q, -q30m, -qR...), because `sendmail -q` is how it is used.
var optArg = map[byte]bool{
	'A': true, 'B': true, 'C': true, 'F': true, 'L': true, 'N': true,
	'O': true, 'R': true, 'V': true, 'X': true, 'b': true, 'e': true,
	'f': true, 'h': true, 'o': true, 'p': true, 'r': true,
	'G': false, 'I': false, 'U': false, 'c': false, 'i': false, 'm': false,
	'n': false, 't': false, 'v': false, 'x': false,
}

// ParseArgs parses the arguments after argv[0] the way Postfix's sendmail
// does: getopt-style, clustered flags (-ti), values attached (-FCronDaemon)
// or separate (-f addr), options end at "--" or at the first operand (no
// permutation, as Postfix's "+" getopt). prog is the program name: "mailq"
// and "newaliases" select their mode. Options that herald does not need are
// accepted and ignored; an unknown option is a *UsageError.
func ParseArgs(prog string, args []string) (Options, error) {
	var o Options
	switch prog {
	case "mailq":
		o.Mode = ModeList
	case "newaliases":
		o.Mode = ModeAliases
	}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break // the first operand ends the options
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			if c == 'q' {
				o.Mode = ModeRunQueue
				break // the rest of the word is -q's value
			}
			takes, known := optArg[c]
			if !known {
				return o, &UsageError{Msg: "invalid option -- '" + printable(c) + "'"}
			}
			if !takes {
				switch c {
				case 't':
					o.ExtractRecipients = true
				case 'i':
					o.IgnoreDots = true
				case 'v':
					o.Verbose = true
				case 'I':
					o.Mode = ModeAliases
				}
				// G, U, c, m, n, x: accepted and ignored.
				continue
			}
			var val string
			if j+1 < len(a) {
				val = a[j+1:]
			} else {
				i++
				if i >= len(args) {
					return o, &UsageError{Msg: "option requires an argument -- '" + printable(c) + "'"}
				}
				val = args[i]
			}
			if err := o.apply(c, val); err != nil {
				return o, err
			}
			break // the value took the rest of the word
		}
	}
	for _, a := range args[i:] {
		o.Recipients = append(o.Recipients, splitRecipients(a)...)
	}
	return o, nil
}

// apply records option c with value val.
func (o *Options) apply(c byte, val string) error {
	switch c {
	case 'f', 'r':
		o.Sender = cleanAddress(val)
		o.SenderSet = true
	case 'F':
		o.FullName = cleanText(val)
	case 'o':
		// -oi (and -o i) is the only -o option with a meaning for us;
		// -oem, -odi, -oQ... are accepted and ignored, as Postfix does.
		if val == "i" {
			o.IgnoreDots = true
		}
	case 'b':
		switch val {
		case "m":
			o.Mode = ModeDeliver
		case "s":
			o.Mode = ModeSMTP
		case "p":
			o.Mode = ModeList
		case "i":
			o.Mode = ModeAliases
		case "d", "l", "v", "t", "h", "H", "D", "P":
			return &UsageError{Msg: "-b" + cleanText(val) + " is not supported by herald"}
		default:
			return &UsageError{Msg: "invalid -b mode: -b" + cleanText(val)}
		}
	}
	// A, B, C, L, N, O, R, V, X, e, h, p: accepted and ignored.
	return nil
}

// splitRecipients splits one command-line operand into addresses: cron
// passes MAILTO="a@x,b@y" as one argument.
func splitRecipients(arg string) []string {
	var out []string
	for _, p := range strings.Split(arg, ",") {
		if a := cleanAddress(p); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// cleanAddress reduces "Name <addr>", "<addr>" or " addr " to addr, and
// drops control characters, which have no place in an address and would
// let an argument inject header lines.
func cleanAddress(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j >= 0 {
			s = s[i+1 : i+j]
		}
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s))
}

// cleanText replaces control characters (newlines above all) with spaces.
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// printable renders an option byte for an error message.
func printable(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return "\\x" + string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])
	}
	return string(c)
}
