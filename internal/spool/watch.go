package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"time"
	"unsafe"

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

	f, incomingWD, err := s.inotify()
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
		// Each read returns at least one event. An event that is not the
		// daemon's own journaled entry (fresh.go) makes the next look list
		// the directories.
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
					s.log.Warn("spool: inotify read failed; polling the spool every 30s", "err", err)
					s.tick(ctx, ch)
				}
				return
			}
			if s.news(buf[:n], incomingWD) {
				s.fresh.missed()
			}
			notify(ch)
		}
	}()
	return ch, nil
}

// inotify sets up a non-blocking inotify descriptor watching both entry
// directories, wrapped in an *os.File so that reads use the runtime poller
// and Close interrupts them; incomingWD is incoming/'s watch.
func (s *Spool) inotify() (_ *os.File, incomingWD int32, _ error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, 0, err
	}
	for _, d := range []string{s.maildrop, s.incoming} {
		wd, err := unix.InotifyAddWatch(fd, d, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE)
		if err != nil {
			_ = unix.Close(fd)
			return nil, 0, &os.PathError{Op: "inotify_add_watch", Path: d, Err: err}
		}
		if d == s.incoming {
			incomingWD = int32(wd)
		}
	}
	return os.NewFile(uintptr(fd), "inotify"), incomingWD, nil
}

// news reports whether the inotify events in buf tell of anything but the
// daemon's own entries in incoming/: a maildrop file, a file someone else
// put into incoming/, or an overflowed event queue.
func (s *Spool) news(buf []byte, incomingWD int32) bool {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return true
		}
		name := string(bytes.TrimRight(buf[unix.SizeofInotifyEvent:end], "\x00"))
		buf = buf[end:]
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 || ev.Wd != incomingWD || !s.fresh.ownName(name) {
			return true
		}
	}
	return false
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
			s.fresh.missed()
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
