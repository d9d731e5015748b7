package testkit

import (
	"errors"
	"io"
)

// FailAfter passes Left bytes through to W, then fails as a full disk
// would: the write that crosses the limit goes in partly and returns an
// error. Tests wrap a target's writer with it to break a write midway.
type FailAfter struct {
	W    io.Writer
	Left int
}

func (f *FailAfter) Write(p []byte) (int, error) {
	if len(p) > f.Left {
		n, _ := f.W.Write(p[:f.Left])
		f.Left = 0
		return n, errors.New("injected: no space left on device")
	}
	f.Left -= len(p)
	return f.W.Write(p)
}
