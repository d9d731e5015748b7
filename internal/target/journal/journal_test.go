package journal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/event"
	"herald/internal/target"
)

// fakeDaemon is a unixgram socket standing in for journald or a syslog
// daemon.
type fakeDaemon struct {
	conn *net.UnixConn
	path string
}

func listen(t *testing.T, name string) *fakeDaemon {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("closing fake daemon: %v", err)
		}
	})
	return &fakeDaemon{conn: conn, path: path}
}

// datagram is one received message: its payload and the descriptors passed
// with it.
type datagram struct {
	data []byte
	fds  []int
}

func (d *fakeDaemon) receive(t *testing.T) datagram {
	t.Helper()
	if err := d.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := d.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("fake daemon at %s received nothing within 10s: %v", d.path, err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatalf("parsing control message: %v", err)
		}
		for _, m := range msgs {
			got, err := unix.ParseUnixRights(&m)
			if err != nil {
				t.Fatalf("parsing SCM_RIGHTS: %v", err)
			}
			fds = append(fds, got...)
		}
	}
	for _, fd := range fds {
		t.Cleanup(func() { _ = unix.Close(fd) })
	}
	return datagram{data: buf[:n], fds: fds}
}

// expectNothing asserts that no further datagram arrives.
func (d *fakeDaemon) expectNothing(t *testing.T) {
	t.Helper()
	if err := d.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if n, err := d.conn.Read(buf); err == nil {
		t.Fatalf("unexpected datagram at %s: %q", d.path, buf[:n])
	}
}

func missingPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "absent.sock")
}

func testEvent() *event.Event {
	return &event.Event{
		ID:        "0b6ac4b1-1f6e-4b0e-9d7a-3c1d2e4f5a6b",
		Timestamp: time.Date(2025, 3, 4, 2, 5, 0, 0, time.UTC),
		Severity:  event.Error,
		Title:     "Bacula: Backup Error of client-fd Incremental",
		Body:      "JobId 12: Fatal error\nTermination: *** Backup Error ***\n",
		Fields:    map[string]string{"type": "bacula", "hostname": "backup1", "job-id": "12"},
	}
}

func TestDeliverNative(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		ev   *event.Event
		want []field
	}{
		{
			name: "multi-line body",
			ev:   testEvent(),
			want: []field{
				{"MESSAGE", "Bacula: Backup Error of client-fd Incremental\nJobId 12: Fatal error\nTermination: *** Backup Error ***\n"},
				{"PRIORITY", "3"},
				{"SYSLOG_FACILITY", "3"},
				{"SYSLOG_IDENTIFIER", "herald"},
				{"HERALD_EVENT_ID", "0b6ac4b1-1f6e-4b0e-9d7a-3c1d2e4f5a6b"},
				{"HERALD_SEVERITY", "error"},
				{"HERALD_FIELD_HOSTNAME", "backup1"},
				{"HERALD_FIELD_JOB_ID", "12"},
				{"HERALD_FIELD_TYPE", "bacula"},
			},
		},
		{
			name: "title only, identifier and facility",
			opt:  Options{Identifier: "notify", Facility: FacilityMail},
			ev: &event.Event{ID: "x", Severity: event.Info, Title: "all good",
				Fields: map[string]string{"multi": "a\nb", "we=ird": "v=1"}},
			want: []field{
				{"MESSAGE", "all good"},
				{"PRIORITY", "6"},
				{"SYSLOG_FACILITY", "2"},
				{"SYSLOG_IDENTIFIER", "notify"},
				{"HERALD_EVENT_ID", "x"},
				{"HERALD_SEVERITY", "info"},
				{"HERALD_FIELD_MULTI", "a\nb"},
				{"HERALD_FIELD_WE_IRD", "v=1"},
			},
		},
		{
			name: "no fields map",
			ev:   &event.Event{ID: "y", Severity: event.Unknown, Title: "t", Body: "b"},
			want: []field{
				{"MESSAGE", "t\nb"},
				{"PRIORITY", "5"},
				{"SYSLOG_FACILITY", "3"},
				{"SYSLOG_IDENTIFIER", "herald"},
				{"HERALD_EVENT_ID", "y"},
				{"HERALD_SEVERITY", "unknown"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jd := listen(t, "j.sock")
			syslog := listen(t, "log.sock")
			opt := tt.opt
			opt.SocketPath, opt.SyslogPath = jd.path, syslog.path
			if err := New(opt).Deliver(context.Background(), tt.ev); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			d := jd.receive(t)
			if len(d.fds) != 0 {
				t.Fatalf("small entry came with %d fds", len(d.fds))
			}
			got, err := parseNative(d.data)
			if err != nil {
				t.Fatalf("parsing datagram %q: %v", d.data, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("fields:\n got %q\nwant %q", got, tt.want)
			}
			syslog.expectNothing(t)
		})
	}
}

func TestPriority(t *testing.T) {
	want := map[event.Severity]int{event.Info: 6, event.Notice: 5, event.Warning: 4, event.Error: 3, event.Unknown: 5}
	for _, s := range event.Severities() {
		if got := Priority(s); got != want[s] {
			t.Errorf("Priority(%s) = %d, want %d", s, got, want[s])
		}
	}
}

// sendBufferSize is the default socket send buffer, which bounds a single
// datagram; an entry larger than it must take the fd path.
func sendBufferSize(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/wmem_default")
	if err != nil {
		t.Fatalf("reading wmem_default: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("parsing wmem_default %q: %v", b, err)
	}
	return n
}

func bigEvent(t *testing.T) *event.Event {
	size := max(300<<10, sendBufferSize(t)+64<<10)
	var body strings.Builder
	for i := 0; body.Len() < size; i++ {
		fmt.Fprintf(&body, "line %d of a very long report\n", i)
	}
	ev := testEvent()
	ev.Body = body.String()
	return ev
}

// readPassedEntry checks the protocol's rule for large entries (an empty
// payload with exactly one fd) and returns the entry the fd holds.
func readPassedEntry(t *testing.T, d datagram) ([]field, *unix.Stat_t, int) {
	t.Helper()
	if len(d.data) != 0 {
		t.Fatalf("fd-passing datagram has a %d-byte payload; the protocol requires none", len(d.data))
	}
	if len(d.fds) != 1 {
		t.Fatalf("got %d fds, want exactly 1", len(d.fds))
	}
	fd := d.fds[0]
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, st.Size)
	n, err := unix.Pread(fd, data, 0)
	if err != nil || n != len(data) {
		t.Fatalf("reading passed fd: %d of %d bytes, %v", n, len(data), err)
	}
	fs, err := parseNative(data)
	if err != nil {
		t.Fatalf("parsing passed entry: %v", err)
	}
	return fs, &st, fd
}

func TestDeliverLargeMemfd(t *testing.T) {
	jd := listen(t, "j.sock")
	ev := bigEvent(t)
	if err := New(Options{SocketPath: jd.path, SyslogPath: missingPath(t)}).Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	fs, st, fd := readPassedEntry(t, jd.receive(t))
	if fs[0].Name != "MESSAGE" || fs[0].Value != ev.Title+"\n"+ev.Body {
		t.Fatalf("MESSAGE of %d bytes does not match the %d-byte title and body", len(fs[0].Value), len(ev.Title)+1+len(ev.Body))
	}
	if len(fs) != 9 || fs[5] != (field{"HERALD_SEVERITY", "error"}) || fs[8] != (field{"HERALD_FIELD_TYPE", "bacula"}) {
		t.Fatalf("fields after MESSAGE: %q", fs[1:])
	}
	// journald refuses a memfd that is not sealed.
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatalf("F_GET_SEALS on passed fd (is it a memfd?): %v", err)
	}
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if seals&want != want {
		t.Fatalf("seals = %#x, want at least %#x", seals, want)
	}
	if st.Nlink != 0 {
		t.Fatalf("memfd has %d links", st.Nlink)
	}
}

func TestDeliverLargeTempFile(t *testing.T) {
	jd := listen(t, "j.sock")
	ev := bigEvent(t)
	tgt := New(Options{SocketPath: jd.path, SyslogPath: missingPath(t)})
	tgt.memfd = func([]byte) (*os.File, error) { return nil, unix.ENOSYS }
	if err := tgt.Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	fs, st, fd := readPassedEntry(t, jd.receive(t))
	if fs[0].Value != ev.Title+"\n"+ev.Body {
		t.Fatalf("MESSAGE of %d bytes does not match", len(fs[0].Value))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 0 {
		t.Fatalf("passed file mode %#o, %d links; want an unlinked regular file", st.Mode, st.Nlink)
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, "/dev/shm/herald-journal.") && !strings.HasPrefix(link, "/tmp/herald-journal.") {
		t.Fatalf("passed file is %s; journald only accepts files directly in /dev/shm or /tmp", link)
	}
}

func TestSyslogFallback(t *testing.T) {
	now := time.Date(2025, 3, 4, 2, 5, 9, 0, time.Local)
	// A socket file nobody listens on, as journald leaves when it dies.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: stale, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("stale socket file should remain: %v", err)
	}

	tests := []struct {
		name    string
		journal string
		opt     Options
		ev      *event.Event
		want    string
	}{
		{
			name: "daemon facility",
			ev:   testEvent(),
			want: "<27>Mar  4 02:05:09 herald[PID]: Bacula: Backup Error of client-fd Incremental " +
				"[event=0b6ac4b1-1f6e-4b0e-9d7a-3c1d2e4f5a6b severity=error hostname=backup1 job-id=12 type=bacula] " +
				"JobId 12: Fatal error / Termination: *** Backup Error ***",
		},
		{
			name:    "stale journal socket, mail facility, odd values",
			journal: stale,
			opt:     Options{Facility: FacilityMail, Identifier: "my tag:x"},
			ev: &event.Event{ID: "e1", Severity: event.Info, Title: "two\nlines\r\n",
				Fields: map[string]string{"k": "a b", "empty": "", "q": `x"]`, "ctl": "\x00"}},
			want: `<22>Mar  4 02:05:09 my_tag_x[PID]: two / lines [event=e1 severity=info ctl="\x00" empty="" k="a b" q="x\"]"]`,
		},
		{
			name: "unknown severity is notice",
			ev:   &event.Event{ID: "e2", Severity: event.Unknown, Title: "t", Body: "\n\n  b\tc  \n"},
			want: "<29>Mar  4 02:05:09 herald[PID]: t [event=e2 severity=unknown] b c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			syslog := listen(t, "log.sock")
			opt := tt.opt
			opt.SocketPath = tt.journal
			if opt.SocketPath == "" {
				opt.SocketPath = missingPath(t)
			}
			opt.SyslogPath = syslog.path
			tgt := New(opt)
			tgt.now = func() time.Time { return now }
			if err := tgt.Deliver(context.Background(), tt.ev); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			got := string(syslog.receive(t).data)
			want := strings.Replace(tt.want, "[PID]", "["+strconv.Itoa(os.Getpid())+"]", 1)
			if got != want {
				t.Fatalf("syslog line:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestSyslogLineTruncated(t *testing.T) {
	syslog := listen(t, "log.sock")
	ev := testEvent()
	ev.Body = strings.Repeat("é", 100000)
	if err := New(Options{SocketPath: missingPath(t), SyslogPath: syslog.path}).Deliver(context.Background(), ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := syslog.receive(t).data
	if len(got) > maxSyslogLine || !strings.HasSuffix(string(got), "é...") {
		t.Fatalf("line of %d bytes ending %q; want at most %d ending on a whole character and ...", len(got), got[max(0, len(got)-10):], maxSyslogLine)
	}
}

func TestDeliverErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		ev   *event.Event
		temp bool
		text string
	}{
		{"no journal, no syslog", context.Background(), testEvent(), true, "syslog fallback"},
		{"cancelled", cancelled, testEvent(), true, "context canceled"},
		{"nil event", context.Background(), nil, false, "nil event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(Options{SocketPath: missingPath(t), SyslogPath: missingPath(t)}).Deliver(tt.ctx, tt.ev)
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			var te *target.Error
			if !errors.As(err, &te) || te.Temp != tt.temp || target.IsTemporary(err) != tt.temp {
				t.Fatalf("error %v (%T): want a target.Error with Temp=%v", err, err, tt.temp)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %q does not mention %q", err, tt.text)
			}
		})
	}
}

// TestDeliverBlockedJournal: a journald that stops reading makes sends
// block once its queue is full; the delivery's deadline must end the wait
// with a temporary error.
func TestDeliverBlockedJournal(t *testing.T) {
	jd := listen(t, "j.sock")
	tgt := New(Options{SocketPath: jd.path, SyslogPath: missingPath(t)})
	for i := range 1000 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := tgt.Deliver(ctx, testEvent())
		cancel()
		if err == nil {
			continue
		}
		if !target.IsTemporary(err) || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Fatalf("delivery %d to a full journal: %v; want a temporary deadline error", i, err)
		}
		return
	}
	t.Fatal("1000 deliveries to a journal that never reads all succeeded; expected one to block until its deadline")
}
