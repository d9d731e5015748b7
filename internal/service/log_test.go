package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// TestNewLogHandlerJournalStream runs the test binary as a child whose
// stderr is a file, with JOURNAL_STREAM naming that file (as systemd names
// the journal stream it connects stderr to) or something else, and asks
// which handler NewLogHandler picks there.
func TestNewLogHandlerJournalStream(t *testing.T) {
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
		{"stderr is the journal stream", devIno(stderrPath), "*service.journalHandler"},
		{"stream is another file", devIno(other), "*slog.TextHandler"},
		{"no stream", "", "*slog.TextHandler"},
		{"malformed stream", "journal", "*slog.TextHandler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=loghandler", "JOURNAL_STREAM="+tt.stream)
			cmd.Stderr = stderr
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.Output(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatal("child test process did not finish within 20s")
			}
			if err != nil {
				t.Fatalf("child: %v", err)
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
