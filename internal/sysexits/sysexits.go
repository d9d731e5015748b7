// Package sysexits holds the exit statuses of BSD's <sysexits.h>, which
// sendmail-compatible programs use to tell their callers what went wrong:
// mail user agents and cron look at these numbers, and 75 (TempFail) in
// particular means "try again later", not "the message is bad".
package sysexits

// The exit statuses, with the values and meanings of <sysexits.h>.
const (
	// OK means success: the message was accepted.
	OK = 0
	// Usage means the command was used incorrectly (bad option, no recipients).
	Usage = 64
	// DataErr means the input data was incorrect in some way.
	DataErr = 65
	// NoInput means an input file did not exist or was not readable.
	NoInput = 66
	// Unavailable means a service is unavailable.
	Unavailable = 69
	// Software means an internal software error was detected.
	Software = 70
	// OSErr means an operating system error (cannot fork, cannot change ids).
	OSErr = 71
	// OSFile means a critical system file is missing or malformed.
	OSFile = 72
	// CantCreat means a (user specified) output file cannot be created.
	CantCreat = 73
	// IOErr means an error occurred while doing I/O on some file.
	IOErr = 74
	// TempFail means a temporary failure: the caller should retry later.
	TempFail = 75
	// NoPerm means the caller lacks the permission for the operation.
	NoPerm = 77
	// Config means something was found in an unconfigured or misconfigured state.
	Config = 78
)
