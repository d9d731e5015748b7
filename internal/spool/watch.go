package spool

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fallbackTick is how often Watch signals when inotify is not available.
const fallbackTick = 30 * time.Second

// Watch returns a channel that receives a signal whenever a new entry or a
// kick may be there: inotify on maildrop/ and incoming/ (a rename into them,
// or a file closed after writing, which is how a kick marker appears), plus
// this Spool's own Submit calls. Signals are coalesced (the channel holds at
// most one), and one is pending from the start so the caller looks at what is
// already there. If inotify cannot be used, Watch logs it and signals every
// 30 seconds instead. The channel is closed when ctx is done.
func (s *Spool) Watch(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()

	f, err := s.inotify()
	if err != nil {
		s.log.Warn("spool: inotify unavailable; polling the spool every 30s", "err", err)
		go s.tick(ctx, ch)
		return ch, nil
	}
	go func() {
		<-ctx.Done()
		// Closing the pollable file wakes the reader below.
		if err := f.Close(); err != nil {
			s.log.Warn("spool: close inotify", "err", err)
		}
	}()
	go func() {
		defer s.unsubscribe(ch)
		// Each read returns at least one event; which one does not matter:
		// the caller rescans the spool.
		buf := make([]byte, 64<<10)
		for {
			_, err := f.Read(buf)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
					s.log.Warn("spool: inotify read failed; polling the spool every 30s", "err", err)
					s.tick(ctx, ch)
				}
				return
			}
			notify(ch)
		}
	}()
	return ch, nil
}

// inotify sets up a non-blocking inotify descriptor watching both entry
// directories, wrapped in an *os.File so that reads use the runtime poller
// and Close interrupts them.
func (s *Spool) inotify() (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{s.maildrop, s.incoming} {
		if _, err := unix.InotifyAddWatch(fd, d, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
			_ = unix.Close(fd)
			return nil, &os.PathError{Op: "inotify_add_watch", Path: d, Err: err}
		}
	}
	return os.NewFile(uintptr(fd), "inotify"), nil
}

// tick signals ch periodically until ctx is done.
func (s *Spool) tick(ctx context.Context, ch chan struct{}) {
	t := time.NewTicker(fallbackTick)
	defer t.Stop()
	defer s.unsubscribe(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			notify(ch)
		}
	}
}

// unsubscribe stops Submit from signalling ch and closes it. Calling it
// twice is harmless.
func (s *Spool) unsubscribe(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[ch]; ok {
		delete(s.subs, ch)
		close(ch)
	}
}

// signal wakes every watcher after this Spool's own Submit.
func (s *Spool) signal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		notify(ch)
	}
}

// notify puts a signal into ch unless one is already pending.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
