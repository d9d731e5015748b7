package smtpd

// Tests of slow clients and of shutting down with sessions open.

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStalledClients(t *testing.T) {
	sub := &fakeSub{}
	const timeout = time.Second
	ts := start(t, sub, Options{ReadTimeout: timeout}, "127.0.0.1:0")

	// idle connects and says nothing; mid stops in the middle of its message.
	idle := dial(t, ts.addr)
	idle.expect(220, "herald.test")
	mid := greet(t, ts.addr)
	mid.send("MAIL FROM:<stall@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	mid.expect(250, "")
	mid.expect(250, "")
	mid.expect(354, "")
	mid.send("Subject: half\r\n\r\nhalf a mess")
	stalled := time.Now()

	// Meanwhile another client gets its mail through.
	other := greet(t, ts.addr)
	id := other.mail("ok@b", []string{"c@d"}, "fine\r\n")
	if since := time.Since(stalled); since >= timeout {
		t.Fatalf("the healthy session took %v, not shorter than the timeout; cannot tell it ran meanwhile", since)
	}

	idle.expect(421, "4.4.2")
	idle.expectClosed()
	mid.expect(451, "4.3.0") // answer to the cut-off DATA
	mid.expect(421, "4.4.2")
	mid.expectClosed()
	if since := time.Since(stalled); since < timeout {
		t.Errorf("stalled sessions closed after %v, before the %v timeout", since, timeout)
	}
	if got := sub.only(t); got.id != id || got.env.From != "ok@b" {
		t.Fatalf("got %+v", got)
	}
	// A client that is slow but never silent for a whole timeout is fine:
	// the limit is on silence, not on the length of DATA.
	slow := greet(t, ts.addr)
	slow.send("MAIL FROM:<slow@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	slow.expect(250, "")
	slow.expect(250, "")
	slow.expect(354, "")
	tick := time.NewTicker(timeout / 4)
	defer tick.Stop()
	for i := 0; i < 6; i++ {
		<-tick.C
		slow.send("line\r\n")
	}
	slow.send(".\r\n")
	slow.expect(250, "2.0.0 Ok: queued as")
}

func TestShutdownLetsDataFinish(t *testing.T) {
	started := make(chan struct{}, 1)
	sub := &fakeSub{started: started}
	ts := start(t, sub, Options{}, "127.0.0.1:0")

	idle := greet(t, ts.addr)
	busy := greet(t, ts.addr)
	busy.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	busy.expect(250, "")
	busy.expect(250, "")
	busy.expect(354, "")
	busy.send("Subject: in flight\r\n\r\nfirst half\r\n")
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("Submit not called")
	}
	// A session with MAIL given but no DATA yet also counts as in flight.
	tx := greet(t, ts.addr)
	tx.send("MAIL FROM:<tx@b>\r\n")
	tx.expect(250, "")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()

	idle.expect(421, "4.3.2")
	idle.expectClosed()
	// No new connections.
	waitFor(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", ts.addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a message was in flight", err)
	default:
	}

	busy.send("second half\r\n.\r\n")
	busy.expect(250, "2.0.0 Ok: queued as")
	busy.expect(421, "4.3.2") // between transactions now: told to go
	busy.expectClosed()

	tx.send("RCPT TO:<c@d>\r\nDATA\r\n")
	tx.expect(250, "")
	tx.expect(354, "")
	<-started
	tx.send("late\r\n.\r\n")
	tx.expect(250, "2.0.0 Ok: queued as")
	tx.expect(421, "4.3.2")

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Shutdown did not return after the sessions ended")
	}
	select {
	case err := <-ts.served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.served <- nil // for the cleanup
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	if got := sub.submissions(); len(got) != 2 || string(got[0].body) != "Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n" {
		t.Fatalf("got %+v", got)
	}
}

func TestShutdownDeadline(t *testing.T) {
	started := make(chan struct{}, 1)
	sub := &fakeSub{started: started}
	ts := start(t, sub, Options{}, "127.0.0.1:0")
	c := greet(t, ts.addr)
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	c.send("never finished\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	// The connection is cut; the message was never acknowledged.
	if err := c.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed after Shutdown deadline")
	}
	if strings.Contains(string(rest), "250") {
		t.Fatalf("got %q after the shutdown deadline", rest)
	}
	if n := len(sub.submissions()); n != 0 {
		t.Fatalf("%d messages submitted", n)
	}
	if err := <-ts.served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	ts.served <- nil
}
