package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"herald/internal/delivery"
	"herald/internal/event"
	"herald/internal/monitor"
)

// Client reaches a running daemon's control socket.
type Client struct{ c *http.Client }

// Dial connects to the control socket of the daemon using stateDir. The
// error is the dial's: fs.ErrPermission for a user who may not connect,
// else no daemon listens.
func Dial(stateDir string) (*Client, error) {
	sock := filepath.Join(stateDir, Socket)
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.Close()
	return &Client{unixClient(sock)}, nil
}

// unixClient is an HTTP client whose every request goes to the unix
// socket sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
}

// dialDaemon is Dial with an error that says which daemon did not answer.
func dialDaemon(stateDir string) (*Client, error) {
	c, err := Dial(stateDir)
	if err != nil {
		return nil, fmt.Errorf("herald is not running with state directory %s: %w", stateDir, err)
	}
	return c, nil
}

// DaemonStatus asks the daemon using stateDir for its status; an error
// when it does not run or the caller may not ask.
func DaemonStatus(stateDir string) (Status, error) {
	var st Status
	c, err := Dial(stateDir)
	if errors.Is(err, fs.ErrPermission) {
		return st, fmt.Errorf("only root and the herald user may ask the daemon: %w", err)
	}
	if err != nil {
		return st, fmt.Errorf("herald is not running with state directory %s: %w", stateDir, err)
	}
	return st, c.do("GET", "/status", &st)
}

// DaemonMonitors asks the daemon using stateDir for its monitors.
func DaemonMonitors(stateDir string) ([]monitor.Status, error) {
	c, err := dialDaemon(stateDir)
	if err != nil {
		return nil, err
	}
	var out []monitor.Status
	return out, c.do("GET", "/monitors", &out)
}

// DaemonPauseMonitor pauses (or resumes) a monitor of the running daemon;
// a name it does not know is monitor.ErrUnknown.
func DaemonPauseMonitor(stateDir, name string, pause bool) error {
	c, err := dialDaemon(stateDir)
	if err != nil {
		return err
	}
	verb := "resume"
	if pause {
		verb = "pause"
	}
	return c.do("POST", "/monitors/"+url.PathEscape(name)+"/"+verb, &struct{}{})
}

// do sends one request and decodes the answer into out; an error answer
// becomes an *Error.
func (c *Client) do(method, path string, out any) error {
	req, err := http.NewRequest(method, "http://herald"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e wireError
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return &Error{Code: e.Code, Msg: e.Error}
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	return json.Unmarshal(body, out)
}

// List lists the deliveries.
func (c *Client) List() ([]delivery.Delivery, error) {
	var ds []delivery.Delivery
	return ds, c.do("GET", "/queue", &ds)
}

// Get returns one delivery and its event.
func (c *Client) Get(id string) (delivery.Delivery, *event.Event, error) {
	var it QueueItem
	err := c.do("GET", "/queue/"+url.PathEscape(id), &it)
	return it.Delivery, it.Event, err
}

// Retry makes a pending or dead delivery due now.
func (c *Client) Retry(id string) error {
	return c.do("POST", "/queue/"+url.PathEscape(id)+"/retry", &struct{}{})
}

// Drop removes a pending or dead delivery.
func (c *Client) Drop(id string) error {
	return c.do("POST", "/queue/"+url.PathEscape(id)+"/drop", &struct{}{})
}

// Flush makes every pending delivery due now and says how many.
func (c *Client) Flush() (int, error) {
	var r flushReply
	err := c.do("POST", "/queue-flush", &r)
	return r.Due, err
}
