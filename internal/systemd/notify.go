// Package systemd holds herald's systemd integration: the sd_notify
// protocol (READY, RELOADING, STOPPING, STATUS and the watchdog), sockets
// passed by socket activation, systemd credentials, and a log handler that
// writes structured entries to the journal when systemd runs herald. It is
// the only package in herald that imports go-systemd; everything here is a
// no-op (or a plain fallback) when herald does not run under systemd.
package systemd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Status texts sent with the state changes, shown by `systemctl status`.
const (
	statusReady     = "running"
	statusReloading = "reloading configuration"
	statusStopping  = "stopping"
)

// Notifier speaks sd_notify (no-op when NOTIFY_SOCKET is unset).
//
// NOTIFY_SOCKET stays in the environment: go-systemd reads it on every call,
// and children (commands run by exec targets) that inherit it are ignored by
// systemd because the unit says NotifyAccess=main. A Notifier is safe for
// concurrent use; each message is one datagram.
type Notifier struct{}

// NewNotifier returns a Notifier for the NOTIFY_SOCKET of the environment.
func NewNotifier() *Notifier { return &Notifier{} }

// Ready tells systemd that start-up (or a reload) is complete: READY=1 with
// STATUS=running.
func (n *Notifier) Ready() error {
	return n.send("READY=1\nSTATUS=" + statusReady)
}

// Reloading tells systemd that herald is reloading its configuration:
// RELOADING=1 with MONOTONIC_USEC, the CLOCK_MONOTONIC time of the request in
// microseconds. The Type=notify-reload protocol (systemd 253) requires the
// timestamp so that it can match the reload to the request; older versions
// ignore it, so it is always sent. Call Ready when the reload is done,
// whether the new configuration was applied or refused.
func (n *Notifier) Reloading() error {
	usec, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("sd_notify RELOADING=1: %w", err)
	}
	return n.send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10) + "\nSTATUS=" + statusReloading)
}

// Stopping tells systemd that herald is shutting down: STOPPING=1.
func (n *Notifier) Stopping() error {
	return n.send("STOPPING=1\nSTATUS=" + statusStopping)
}

// Status sets the free-form status line shown by `systemctl status`;
// newlines in s become spaces.
func (n *Notifier) Status(s string) error {
	return n.send("STATUS=" + oneLine(s))
}

func (n *Notifier) send(state string) error {
	// unsetEnvironment false: the watchdog and later state changes need
	// NOTIFY_SOCKET for the whole life of the process.
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstLine(state), err)
	}
	return nil
}

func monotonicUsec() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", err)
	}
	return ts.Sec*1_000_000 + ts.Nsec/1_000, nil
}

// oneLine keeps s on one line: a newline would start another sd_notify
// assignment.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
