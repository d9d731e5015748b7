// Command activated is a test helper for internal/systemd: started by
// systemd-socket-activate, it calls systemd.Listeners, prints one JSON line
// describing what it received, then echoes one line on the first "smtp"
// listener's first connection and exits.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"herald/internal/systemd"
)

type report struct {
	Names   map[string][]string `json:"names"` // name -> listener addresses
	EnvLeft []string            `json:"env_left"`
	Error   string              `json:"error,omitempty"`
}

func main() {
	ls, err := systemd.Listeners()
	r := report{Names: map[string][]string{}}
	if err != nil {
		r.Error = err.Error()
	}
	for name, l := range ls {
		for _, x := range l {
			r.Names[name] = append(r.Names[name], x.Addr().String())
		}
		sort.Strings(r.Names[name])
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(v); ok {
			r.EnvLeft = append(r.EnvLeft, v)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "activated:", err)
		os.Exit(1)
	}
	smtp := ls["smtp"]
	if len(smtp) == 0 {
		os.Exit(0)
	}
	// The connection that made systemd-socket-activate start us waits in the
	// listen queue. Never hang a test for ever.
	go func() {
		time.Sleep(20 * time.Second)
		fmt.Fprintln(os.Stderr, "activated: no connection within 20s")
		os.Exit(2)
	}()
	c, err := smtp[0].Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "activated: accept:", err)
		os.Exit(1)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "activated: read:", err)
		os.Exit(1)
	}
	if _, err := c.Write([]byte("echo: " + line)); err != nil {
		fmt.Fprintln(os.Stderr, "activated: write:", err)
		os.Exit(1)
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "activated: close:", err)
		os.Exit(1)
	}
}
