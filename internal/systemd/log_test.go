package systemd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestNewLogHandlerTextWithoutJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	var buf bytes.Buffer
	h := NewLogHandler(&buf, slog.LevelInfo)
	if _, ok := h.(*slog.TextHandler); !ok {
		t.Fatalf("NewLogHandler without JOURNAL_STREAM = %T, want *slog.TextHandler", h)
	}
	log := slog.New(h)
	log.Debug("hidden")
	log.Info("delivered", "event_id", "E1", "delivery_id", "D1", "target", "gotify")
	out := buf.String()
	for _, want := range []string{"level=INFO", "msg=delivered", "event_id=E1", "delivery_id=D1", "target=gotify"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("debug line logged at level info: %q", out)
	}
}

// TestNewLogHandlerJournalStream runs a helper whose stderr is a file, with
// JOURNAL_STREAM naming that file (as systemd names the journal stream it
// connects stderr to) or something else, and asks which handler
// NewLogHandler picks there.
func TestNewLogHandlerJournalStream(t *testing.T) {
	helper := buildHelper(t, "journallog")
	dir := t.TempDir()
	stderrPath := filepath.Join(dir, "stderr")
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	devIno := func(path string) string {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()

	tests := []struct {
		name, stream, want string
	}{
		{"stderr is the journal stream", devIno(stderrPath), "*systemd.journalHandler"},
		{"stream is another file", devIno(other), "*slog.TextHandler"},
		{"no stream", "", "*slog.TextHandler"},
		{"malformed stream", "journal", "*slog.TextHandler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, helper, "kind")
			cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+tt.stream)
			cmd.Stderr = stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("journallog kind: %v", err)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Fatalf("JOURNAL_STREAM=%q: NewLogHandler = %s, want %s", tt.stream, got, tt.want)
			}
		})
	}
}

// entry is one journal.Send call seen by a fake journal.
type entry struct {
	msg  string
	pri  journal.Priority
	vars map[string]string
}

type fakeJournal struct {
	entries []entry
	err     error
}

func (f *fakeJournal) send(msg string, pri journal.Priority, vars map[string]string) error {
	if f.err != nil {
		return f.err
	}
	f.entries = append(f.entries, entry{msg, pri, vars})
	return nil
}

type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("<secret>") }

func TestJournalHandler(t *testing.T) {
	ts := time.Date(2025, 3, 1, 2, 3, 4, 500, time.UTC)
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want []entry
	}{
		{
			name: "attributes become upper-case fields",
			log: func(l *slog.Logger) {
				l.Info("delivered", "event_id", "E1", "delivery_id", "D1", "target", "gotify")
			},
			want: []entry{{"delivered", journal.PriInfo, map[string]string{
				"EVENT_ID": "E1", "DELIVERY_ID": "D1", "TARGET": "gotify", "SYSLOG_IDENTIFIER": "herald"}}},
		},
		{
			name: "value kinds",
			log: func(l *slog.Logger) {
				l.Warn("retry", "attempt", 3, "backoff", 90*time.Second, "at", ts,
					"ok", false, "ratio", 0.5, "err", errors.New("connection refused"), "token", secret("hunter2"))
			},
			want: []entry{{"retry", journal.PriWarning, map[string]string{
				"ATTEMPT": "3", "BACKOFF": "1m30s", "AT": "2025-03-01T02:03:04.0000005Z", "OK": "false",
				"RATIO": "0.5", "ERR": "connection refused", "TOKEN": "<secret>", "SYSLOG_IDENTIFIER": "herald"}}},
		},
		{
			name: "WithAttrs and WithGroup",
			log: func(l *slog.Logger) {
				l.With("event_id", "E2").WithGroup("smtp").With("relay", "mx.example").
					Error("refused", "code", 550, slog.Group("reply", "text", "no"))
			},
			want: []entry{{"refused", journal.PriErr, map[string]string{
				"EVENT_ID": "E2", "SMTP_RELAY": "mx.example", "SMTP_CODE": "550", "SMTP_REPLY_TEXT": "no",
				"SYSLOG_IDENTIFIER": "herald"}}},
		},
		{
			name: "empty attributes, empty groups and inline groups",
			log: func(l *slog.Logger) {
				l.WithGroup("").Info("m", slog.Attr{}, slog.Group("none"), slog.Group("", "inline", "x"))
			},
			want: []entry{{"m", journal.PriInfo, map[string]string{"INLINE": "x", "SYSLOG_IDENTIFIER": "herald"}}},
		},
		{
			name: "reserved names cannot fake journal fields",
			log: func(l *slog.Logger) {
				l.Info("real", "message", "fake", "priority", "0", "syslog_identifier", "sshd", "_pid", "1")
			},
			want: []entry{{"real", journal.PriInfo, map[string]string{
				"ATTR_MESSAGE": "fake", "ATTR_PRIORITY": "0", "ATTR_SYSLOG_IDENTIFIER": "sshd", "PID": "1",
				"SYSLOG_IDENTIFIER": "herald"}}},
		},
		{
			name: "multi-line message and value",
			log:  func(l *slog.Logger) { l.Info("line 1\nline 2", "body", "a\nb") },
			want: []entry{{"line 1\nline 2", journal.PriInfo, map[string]string{"BODY": "a\nb", "SYSLOG_IDENTIFIER": "herald"}}},
		},
		{
			name: "debug is below the level",
			log:  func(l *slog.Logger) { l.Debug("hidden") },
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeJournal{}
			var text bytes.Buffer
			h := newJournalHandler(slog.LevelInfo, f.send, slog.NewTextHandler(&text, nil))
			tt.log(slog.New(h))
			if !reflect.DeepEqual(f.entries, tt.want) {
				t.Fatalf("journal entries:\n got %#v\nwant %#v", f.entries, tt.want)
			}
			if text.Len() != 0 {
				t.Fatalf("text fallback used although the journal accepted the entry: %q", text.String())
			}
		})
	}
}

// WithAttrs on one logger must not leak into another derived from the same
// parent (the classic shared-slice bug).
func TestJournalHandlerDerivedLoggersIndependent(t *testing.T) {
	f := &fakeJournal{}
	base := slog.New(newJournalHandler(nil, f.send, slog.NewTextHandler(&bytes.Buffer{}, nil))).With("a", "1")
	l1 := base.With("b", "2")
	l2 := base.With("c", "3")
	l1.Info("one")
	l2.Info("two")
	if _, ok := f.entries[1].vars["B"]; ok {
		t.Fatalf("attribute of a sibling logger leaked: %v", f.entries[1].vars)
	}
	if f.entries[0].vars["A"] != "1" || f.entries[0].vars["B"] != "2" || f.entries[1].vars["C"] != "3" {
		t.Fatalf("entries = %v", f.entries)
	}
}

// When journald refuses the entry, the line goes to the text handler (which
// systemd still collects from stderr) with the same attributes and groups.
func TestJournalHandlerFallsBackToText(t *testing.T) {
	f := &fakeJournal{err: errors.New("connect: no such file or directory")}
	var text bytes.Buffer
	h := newJournalHandler(slog.LevelInfo, f.send, slog.NewTextHandler(&text, nil))
	slog.New(h).With("event_id", "E3").WithGroup("g").Info("kept", "k", "v")
	out := text.String()
	for _, want := range []string{"msg=kept", "event_id=E3", "g.k=v"} {
		if !strings.Contains(out, want) {
			t.Errorf("fallback output %q lacks %q", out, want)
		}
	}
}

func TestJournalHandlerEnabled(t *testing.T) {
	var lv slog.LevelVar
	lv.Set(slog.LevelWarn)
	h := newJournalHandler(&lv, (&fakeJournal{}).send, slog.NewTextHandler(&bytes.Buffer{}, nil))
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Fatal("Enabled does not follow the level")
	}
	lv.Set(slog.LevelDebug) // a reload may change the level at run time
	if !h.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("Enabled does not follow a changed LevelVar")
	}
}

func TestPriority(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  journal.Priority
	}{
		{slog.LevelDebug - 4, journal.PriDebug},
		{slog.LevelDebug, journal.PriDebug},
		{slog.LevelInfo - 1, journal.PriDebug},
		{slog.LevelInfo, journal.PriInfo},
		{slog.LevelInfo + 1, journal.PriNotice},
		{slog.LevelWarn - 1, journal.PriNotice},
		{slog.LevelWarn, journal.PriWarning},
		{slog.LevelError - 1, journal.PriWarning},
		{slog.LevelError, journal.PriErr},
		{slog.LevelError + 8, journal.PriErr},
	}
	for _, tt := range tests {
		if got := priority(tt.level); got != tt.want {
			t.Errorf("priority(%v) = %d, want %d", tt.level, got, tt.want)
		}
	}
}

func TestJournalField(t *testing.T) {
	tests := []struct{ key, want string }{
		{"event_id", "EVENT_ID"},
		{"delivery_id", "DELIVERY_ID"},
		{"target", "TARGET"},
		{"smtp_relay", "SMTP_RELAY"},
		{"Already_UPPER9", "ALREADY_UPPER9"},
		{"message-id", "ATTR_MESSAGE_ID"}, // "-" becomes "_", and MESSAGE_ID is reserved
		{"http.status", "HTTP_STATUS"},
		{"café", "CAF_"},
		{"with space", "WITH_SPACE"},
		{"_trusted", "TRUSTED"},
		{"__pid", "PID"},
		{"___", "ATTR"},
		{"", "ATTR"},
		{"9lives", "ATTR_9LIVES"},
		{"_9", "ATTR_9"},
		{"message", "ATTR_MESSAGE"},
		{"priority", "ATTR_PRIORITY"},
		{"unit", "ATTR_UNIT"},
		{"object_exe", "ATTR_OBJECT_EXE"},
		{"code_line", "ATTR_CODE_LINE"},
		{"error", "ERROR"},
		{strings.Repeat("k", 70), strings.Repeat("K", 64)},
		{"9" + strings.Repeat("k", 70), "ATTR_9" + strings.Repeat("K", 58)},
	}
	for _, tt := range tests {
		if got := journalField(tt.key); got != tt.want {
			t.Errorf("journalField(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// validJournalField is journald's own rule (journal_field_valid for client
// fields): 1 to 64 characters of A-Z, 0-9 and "_", not starting with "_" or
// a digit.
func validJournalField(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '_' || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func FuzzJournalField(f *testing.F) {
	for _, s := range []string{"event_id", "", "_", "9", "message", "café", "a.b-c d", strings.Repeat("x", 100), "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name := journalField(key)
		if !validJournalField(name) {
			t.Fatalf("journalField(%q) = %q: journald would reject it", key, name)
		}
		if reservedFields[name] {
			t.Fatalf("journalField(%q) = %q: a reserved field", key, name)
		}
	})
}

// parseNative decodes one datagram of journald's native protocol
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): "NAME=value\n", or for
// values with newlines "NAME\n", a 64-bit little-endian length, the value
// and "\n". A field sent twice is an error here: herald never does that.
func parseNative(b []byte) (map[string]string, error) {
	fields := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("unterminated field %q", b)
		}
		line := b[:nl]
		var name, value string
		if eq := bytes.IndexByte(line, '='); eq >= 0 {
			name, value = string(line[:eq]), string(line[eq+1:])
			b = b[nl+1:]
		} else {
			name = string(line)
			b = b[nl+1:]
			if len(b) < 8 {
				return nil, fmt.Errorf("field %s: short length", name)
			}
			n := binary.LittleEndian.Uint64(b)
			b = b[8:]
			if uint64(len(b)) < n+1 || b[n] != '\n' {
				return nil, fmt.Errorf("field %s: bad binary value", name)
			}
			value = string(b[:n])
			b = b[n+1:]
		}
		if !validJournalField(name) {
			return nil, fmt.Errorf("invalid field name %q", name)
		}
		if _, dup := fields[name]; dup {
			return nil, fmt.Errorf("field %s sent twice", name)
		}
		fields[name] = value
	}
	return fields, nil
}

// TestLogHandlerNativeJournal runs a helper that logs through NewLogHandler
// with its stderr marked as the journal stream, go-systemd's real
// journal.Send, and the journal socket moved (at link time) to a fake
// journald, and checks the entries that arrive.
func TestLogHandlerNativeJournal(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "j.sock")
	helper := buildHelper(t, "journallog",
		"-ldflags=-X github.com/coreos/go-systemd/v22/journal.journalSocket="+sock)

	run := func(t *testing.T) string {
		t.Helper()
		stderrPath := filepath.Join(t.TempDir(), "stderr")
		stderr, err := os.Create(stderrPath)
		if err != nil {
			t.Fatal(err)
		}
		defer stderr.Close()
		var st syscall.Stat_t
		if err := syscall.Fstat(int(stderr.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, helper)
		cmd.Env = append(os.Environ(), fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
		cmd.Stderr = stderr
		if out, err := cmd.Output(); err != nil || len(out) != 0 {
			t.Fatalf("journallog helper: %v, stdout %q", err, out)
		}
		text, err := os.ReadFile(stderrPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(text)
	}

	t.Run("journald listening", func(t *testing.T) {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := conn.Close(); err != nil {
				t.Error(err)
			}
			if err := os.Remove(sock); err != nil {
				t.Error(err)
			}
		}()
		if text := run(t); text != "" {
			t.Fatalf("helper wrote text although the journal took the entries: %q", text)
		}
		want := []map[string]string{
			{"MESSAGE": "mail accepted", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "herald", "EVENT_ID": "E1", "SIZE": "1234"},
			{"MESSAGE": "relay deferred\nwill retry", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "herald",
				"DELIVERY_ID": "D7", "SMTP_TARGET": "relay", "SMTP_REPLY": "451 4.3.0 try later\nsecond line", "SMTP_ERR": "temporary"},
			{"MESSAGE": "debug line", "PRIORITY": "7", "SYSLOG_IDENTIFIER": "herald"},
		}
		buf := make([]byte, 1<<16)
		for i, w := range want {
			if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				t.Fatalf("entry %d: nothing from the helper within 5s: %v", i, err)
			}
			got, err := parseNative(buf[:n])
			if err != nil {
				t.Fatalf("entry %d: %v in %q", i, err, buf[:n])
			}
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("entry %d:\n got %q\nwant %q", i, got, w)
			}
		}
	})

	t.Run("no journald", func(t *testing.T) {
		// Nobody listens on the socket: every line goes to stderr as text,
		// which systemd still stores.
		text := run(t)
		for _, want := range []string{
			`level=INFO msg="mail accepted" event_id=E1 size=1234`,
			`level=WARN msg="relay deferred\nwill retry" delivery_id=D7 smtp.target=relay`,
			`level=DEBUG msg="debug line"`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("fallback text lacks %q:\n%s", want, text)
			}
		}
	})
}
