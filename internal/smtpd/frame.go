package smtpd

import (
	"bytes"
	"strconv"
	"strings"
)

// The input framing rules of conn, as pure functions. They mirror what
// go-smtp does with the same bytes, so that conn always knows whether the
// next input byte belongs to a command line, to message data or to a BDAT
// chunk.

// dataEnd tracks go-smtp's end-of-data state machine (its dataReader): the
// message ends at CRLF "." CRLF, counting the CRLF that ends the DATA command
// line; a bare LF never starts a line.
type dataEnd int

const (
	deBeginLine dataEnd = iota // at the start of a line; the initial state
	deDot                      // "." at the start of a line
	deDotCR                    // ".\r" at the start of a line
	deCR                       // "\r" somewhere
	deData                     // inside a line
)

// scan advances the state over b and returns how many bytes of b belong to
// the message, end marker included, and whether the end marker was seen.
func (s *dataEnd) scan(b []byte) (int, bool) {
	st := *s
	for i, c := range b {
		switch st {
		case deBeginLine:
			switch c {
			case '.':
				st = deDot
			case '\r':
				st = deCR
			default:
				st = deData
			}
		case deDot:
			if c == '\r' {
				st = deDotCR
			} else {
				st = deData
			}
		case deDotCR:
			if c == '\n' {
				*s = deBeginLine
				return i + 1, true
			}
			// go-smtp: the byte after ".\r" is data, even a '\r'.
			st = deData
		case deCR:
			if c == '\n' {
				st = deBeginLine
			} else {
				st = deData
			}
		case deData:
			if c == '\r' {
				st = deCR
			}
		}
	}
	*s = st
	return len(b), false
}

// bdatSize reports the chunk size of a BDAT command line exactly when
// go-smtp would read that many chunk bytes after it: the line parses as
// "BDAT size [LAST]" with size a 32-bit unsigned decimal.
func bdatSize(line []byte) (int64, bool) {
	l := strings.TrimRight(string(line), "\r\n")
	if len(l) < 4 || !strings.EqualFold(l[:4], "BDAT") || strings.HasPrefix(strings.ToUpper(l), "STARTTLS") {
		return 0, false
	}
	// go-smtp's parseCmd: exactly "BDAT", or "BDAT" + space + arguments.
	if len(l) == 4 || len(l) == 5 || l[4] != ' ' {
		return 0, false
	}
	args := strings.Fields(l[5:])
	if len(args) == 0 || len(args) > 2 || (len(args) == 2 && !strings.EqualFold(args[1], "LAST")) {
		return 0, false
	}
	n, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

// qualify appends "@"+domain to the address of a MAIL FROM or RCPT TO line
// whose address has no domain ("RCPT TO:<root>", as bsmtp sends for
// `bsmtp root`), which go-smtp would refuse with 501. Postfix qualifies such
// addresses from local clients with its own domain the same way. Every other
// line, the null sender "<>" and quoted local parts included, comes back
// unchanged (the same slice).
func qualify(line []byte, domain string) []byte {
	if len(line) < 8 || domain == "" {
		return line
	}
	var rest []byte
	switch {
	case hasPrefixFold(line, "MAIL ") || hasPrefixFold(line, "RCPT "):
		rest = bytes.TrimLeft(line[5:], " \t")
	default:
		return line
	}
	isMail := hasPrefixFold(line, "MAIL")
	switch {
	case isMail && hasPrefixFold(rest, "FROM:"):
		rest = rest[len("FROM:"):]
	case !isMail && hasPrefixFold(rest, "TO:"):
		rest = rest[len("TO:"):]
	default:
		return line
	}
	rest = bytes.TrimLeft(rest, " \t")
	start := len(line) - len(rest)
	if len(rest) > 0 && rest[0] == '<' {
		start++
		rest = rest[1:]
	}
	// The local part: go-smtp's dot-string characters. It must end the
	// address, at '>', a blank or the line end.
	end := 0
	for end < len(rest) && isDotStringByte(rest[end]) {
		end++
	}
	if end == 0 || end < len(rest) && !strings.ContainsRune(">\r\n \t", rune(rest[end])) {
		return line
	}
	at := start + end
	out := make([]byte, 0, len(line)+1+len(domain))
	out = append(out, line[:at]...)
	out = append(out, '@')
	out = append(out, domain...)
	out = append(out, line[at:]...)
	return out
}

// isDotStringByte reports whether go-smtp accepts c in an unquoted local
// part; '@' is excluded because it would end the local part.
func isDotStringByte(c byte) bool {
	switch c {
	case '@', '(', ')', '<', '>', '[', ']', ':', ';', '\\', ',', '"', ' ', '\t', '\r', '\n':
		return false
	}
	return true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}
