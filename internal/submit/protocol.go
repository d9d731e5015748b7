// Package submit holds the sendmail shim's door into the running daemon: a
// unix stream socket, STATE/submit/submit.sock, over which the shim hands
// one message to the daemon and exits once the daemon has stored it
// durably in the spool (spool.(*Spool).Submit). It is faster than the
// maildrop, which the shim writes and fsyncs itself, and which stays the
// fallback whenever the daemon does not answer. The package holds the wire
// format, the daemon's server and the shim's client; docs/submit.md tells
// the whole story (who may connect, the fallback, why nothing is submitted
// twice).
//
// # Wire format
//
// One request and one reply per connection; integers are big-endian.
//
//	request:  version      1 byte, 1
//	          header_len   uint32, at most MaxHeader
//	          header       header_len bytes: kind, source, submission,
//	                       from (each a string), then uint32 n and n
//	                       recipient strings; a string is uint32 length +
//	                       bytes
//	          body_len     uint64, at most MaxMessageSize
//	          body         body_len bytes: the message
//	reply:    version      1 byte, 1
//	          status       1 byte, a sysexits code (Status*)
//	          text_len     uint32, at most MaxReplyText
//	          text         the spool entry ID (status 0), else the reason
//
// The daemon takes the submitter's uid from the socket (SO_PEERCRED), never
// from the request; every header field is as trustworthy as the message,
// as in a maildrop entry.
package submit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"herald/internal/spool"
)

// Version is the protocol version, the first byte of a request and a reply.
const Version = 1

// Where the socket lives under the state directory. The directory is mode
// 0710, owned by the daemon's user and the shim's group (herald-drop) in a
// package install, so only the setgid shim and root reach the socket,
// exactly like the maildrop.
const (
	DirName    = "submit"
	SocketName = "submit.sock"
)

// SocketPath returns the socket's path under stateDir.
func SocketPath(stateDir string) string {
	return filepath.Join(stateDir, DirName, SocketName)
}

// Limits of the wire format.
const (
	// MaxHeader bounds the encoded header: the spool refuses an envelope
	// line over 4 MiB anyway (docs/limits.md).
	MaxHeader = 4 << 20
	// MaxMessageSize is the largest message accepted: the shim's limit
	// for the maildrop (internal/shim DefaultMaxSize).
	MaxMessageSize = 32 << 20
	// MaxReplyText bounds a reply's text.
	MaxReplyText = 4096
)

// Reply statuses: sysexits codes, so that the shim can exit with them.
const (
	// StatusOK: stored durably; the text is the spool entry ID.
	StatusOK = 0
	// StatusDataErr: refused for good (message or envelope too large):
	// retrying or the maildrop cannot help.
	StatusDataErr = 65
	// StatusTempFail: not kept (disk limits, spool failure); the shim
	// falls back to the maildrop.
	StatusTempFail = 75
	// StatusProtocol: the request was not understood; not kept.
	StatusProtocol = 76
)

// Request is the envelope of one submission.
type Request struct {
	Kind   spool.Kind // spool.KindMail or spool.KindEvent
	Source string     // "sendmail" or "notify": the sources a maildrop entry may name
	// Submission is the shim's ID for this message (spool.NewSubmission),
	// which its maildrop fallback carries too.
	Submission string
	From       string
	Recipients []string
}

// ProtocolError reports a request that does not follow the wire format.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "submit: bad request: " + e.Msg }

// ErrTooLarge reports a message over the size limit; it wraps
// spool.ErrTooLarge.
var ErrTooLarge = fmt.Errorf("submit: %w", spool.ErrTooLarge)

// check validates the fields a maildrop entry may hold.
func (r *Request) check() error {
	switch r.Kind {
	case spool.KindMail, spool.KindEvent:
	default:
		return &ProtocolError{fmt.Sprintf("kind %q", r.Kind)}
	}
	if r.Source != "sendmail" && r.Source != "notify" {
		return &ProtocolError{fmt.Sprintf("source %q", r.Source)}
	}
	if !spool.ValidSubmission(r.Submission) {
		return &ProtocolError{fmt.Sprintf("submission ID %q", r.Submission)}
	}
	return nil
}

// appendString appends a length-prefixed string.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// EncodeRequest returns the bytes that precede the body of a request for
// bodyLen bytes of message.
func EncodeRequest(r Request, bodyLen int64) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	h := make([]byte, 0, 128)
	h = appendString(h, string(r.Kind))
	h = appendString(h, r.Source)
	h = appendString(h, r.Submission)
	h = appendString(h, r.From)
	h = binary.BigEndian.AppendUint32(h, uint32(len(r.Recipients)))
	for _, a := range r.Recipients {
		h = appendString(h, a)
	}
	if len(h) > MaxHeader {
		return nil, fmt.Errorf("submit: envelope of %d bytes: %w", len(h), spool.ErrEnvelopeTooLarge)
	}
	if bodyLen > MaxMessageSize {
		return nil, ErrTooLarge
	}
	out := make([]byte, 0, 1+4+len(h)+8)
	out = append(out, Version)
	out = binary.BigEndian.AppendUint32(out, uint32(len(h)))
	out = append(out, h...)
	return binary.BigEndian.AppendUint64(out, uint64(bodyLen)), nil
}

// ReadRequest reads a request's version, header and body length from r,
// leaving r at the first byte of the body. A malformed request is a
// *ProtocolError; a body over maxBody bytes is ErrTooLarge; a short read is
// io.ErrUnexpectedEOF (or r's own error).
func ReadRequest(r *bufio.Reader, maxBody int64) (Request, int64, error) {
	var req Request
	v, err := r.ReadByte()
	if err != nil {
		return req, 0, err
	}
	if v != Version {
		return req, 0, &ProtocolError{fmt.Sprintf("version %d, want %d", v, Version)}
	}
	var n4 [4]byte
	if _, err := io.ReadFull(r, n4[:]); err != nil {
		return req, 0, short(err)
	}
	hl := binary.BigEndian.Uint32(n4[:])
	if hl > MaxHeader {
		return req, 0, &ProtocolError{fmt.Sprintf("header of %d bytes, at most %d", hl, MaxHeader)}
	}
	// The length is bounded above, and the read is done in steps, so a
	// lying length costs at most what the client really sent.
	h, err := readN(r, int(hl))
	if err != nil {
		return req, 0, short(err)
	}
	if req, err = parseHeader(h); err != nil {
		return req, 0, err
	}
	var n8 [8]byte
	if _, err := io.ReadFull(r, n8[:]); err != nil {
		return req, 0, short(err)
	}
	bl := binary.BigEndian.Uint64(n8[:])
	if maxBody <= 0 || maxBody > MaxMessageSize {
		maxBody = MaxMessageSize
	}
	if bl > uint64(maxBody) {
		return req, 0, ErrTooLarge
	}
	return req, int64(bl), nil
}

// readN reads exactly n bytes, growing its buffer as the data comes.
func readN(r io.Reader, n int) ([]byte, error) {
	const step = 64 << 10
	b := make([]byte, 0, min(n, step))
	for len(b) < n {
		k := min(n-len(b), step)
		b = append(b, make([]byte, k)...)
		if _, err := io.ReadFull(r, b[len(b)-k:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// short turns a clean EOF inside a request into io.ErrUnexpectedEOF.
func short(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseHeader decodes the header fields and checks them.
func parseHeader(h []byte) (Request, error) {
	var req Request
	p := parser{b: h}
	req.Kind = spool.Kind(p.str())
	req.Source = p.str()
	req.Submission = p.str()
	req.From = p.str()
	n := p.u32()
	if p.err == nil && uint64(n)*4 > uint64(len(p.b)) {
		// Each recipient takes at least its length: no allocation for
		// a count the header cannot hold.
		p.err = fmt.Errorf("%d recipients in %d bytes", n, len(p.b))
	}
	if p.err == nil && n > 0 {
		req.Recipients = make([]string, 0, n)
		for i := uint32(0); i < n && p.err == nil; i++ {
			req.Recipients = append(req.Recipients, p.str())
		}
	}
	if p.err == nil && len(p.b) != 0 {
		p.err = fmt.Errorf("%d bytes after the recipients", len(p.b))
	}
	if p.err != nil {
		return Request{}, &ProtocolError{"header: " + p.err.Error()}
	}
	if err := req.check(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// parser reads length-prefixed fields; the first error sticks.
type parser struct {
	b   []byte
	err error
}

func (p *parser) u32() uint32 {
	if p.err != nil {
		return 0
	}
	if len(p.b) < 4 {
		p.err = errors.New("truncated")
		return 0
	}
	v := binary.BigEndian.Uint32(p.b)
	p.b = p.b[4:]
	return v
}

func (p *parser) str() string {
	n := p.u32()
	if p.err != nil {
		return ""
	}
	if uint64(n) > uint64(len(p.b)) {
		p.err = fmt.Errorf("string of %d bytes with %d left", n, len(p.b))
		return ""
	}
	s := string(p.b[:n])
	p.b = p.b[n:]
	return s
}

// bodyReader yields exactly n bytes of r and fails with
// io.ErrUnexpectedEOF if r ends before: a client that disappears
// mid-message must never leave a truncated message in the spool, and
// spool.Submit stores what its reader returned up to io.EOF.
type bodyReader struct {
	r io.Reader
	n int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	k, err := b.r.Read(p)
	b.n -= int64(k)
	if errors.Is(err, io.EOF) {
		if b.n > 0 {
			return k, io.ErrUnexpectedEOF
		}
		err = nil
	}
	if err == nil && b.n == 0 {
		err = io.EOF
	}
	return k, err
}

// EncodeReply returns a reply.
func EncodeReply(status byte, text string) []byte {
	if len(text) > MaxReplyText {
		text = text[:MaxReplyText]
	}
	b := make([]byte, 0, 6+len(text))
	b = append(b, Version, status)
	b = binary.BigEndian.AppendUint32(b, uint32(len(text)))
	return append(b, text...)
}

// ReadReply reads a reply.
func ReadReply(r io.Reader) (status byte, text string, err error) {
	var h [6]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, "", short(err)
	}
	if h[0] != Version {
		return 0, "", &ProtocolError{fmt.Sprintf("reply version %d, want %d", h[0], Version)}
	}
	n := binary.BigEndian.Uint32(h[2:])
	if n > MaxReplyText {
		return 0, "", &ProtocolError{fmt.Sprintf("reply text of %d bytes", n)}
	}
	t := make([]byte, n)
	if _, err := io.ReadFull(r, t); err != nil {
		return 0, "", short(err)
	}
	return h[1], string(t), nil
}
