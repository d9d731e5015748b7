package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listeners returns the sockets passed by systemd socket activation, keyed by
// their FileDescriptorName= ("smtp" from herald.socket, "http" from
// herald-http.socket; a socket without a name is "LISTEN_FD_<fd>"). The map
// is empty, never nil, when herald was not socket-activated.
//
// It reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES once and removes them
// from the environment, so that children (exec targets) neither inherit them
// nor mistake herald's descriptors for their own. Call it once, early.
//
// A passed descriptor that is not a stream listener (ListenDatagram= by
// mistake, say) is an error rather than silently missing, since herald would
// otherwise start without the listener the unit promised.
func Listeners() (map[string][]net.Listener, error) {
	// go-systemd skips descriptors it cannot turn into a net.Listener
	// without a word; count what systemd passed so that can be noticed.
	passed := passedFDs()
	ls, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	if ls == nil {
		ls = map[string][]net.Listener{}
	}
	got := 0
	for _, l := range ls {
		got += len(l)
	}
	if got != passed {
		for _, l := range ls {
			for _, x := range l {
				_ = x.Close() // the error below is the one that matters
			}
		}
		return nil, fmt.Errorf("socket activation: systemd passed %d socket(s) but only %d are stream listeners: check the ListenStream= lines of herald.socket and herald-http.socket", passed, got)
	}
	return ls, nil
}

// passedFDs returns how many descriptors systemd passed to this process,
// with the same rules as sd_listen_fds(3): LISTEN_PID must be our pid.
func passedFDs() int {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}
