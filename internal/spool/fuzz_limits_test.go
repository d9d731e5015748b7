package spool

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzEnvelopeAgreement: whatever envelope the writer encodes, the reader
// parses back unchanged; what the writer refuses is ErrEnvelopeTooLarge.
func FuzzEnvelopeAgreement(f *testing.F) {
	f.Add("root@example.org", "a@b&c<d>", "\x01\"\\\u2028\xff", 3)
	f.Add("", "", "", 0)
	f.Add("<>", "&&&&&&&&", "é", 1000)
	f.Fuzz(func(t *testing.T, from, rcpt, odd string, n int) {
		if n < 0 || n > 100 {
			return
		}
		env := Envelope{Kind: KindMail, Source: "sendmail", From: from,
			Received: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
		for i := 0; i < n; i++ {
			env.Recipients = append(env.Recipients, rcpt+odd)
		}
		head, _, err := encodeHead(&env)
		if err != nil {
			if !errors.Is(err, ErrEnvelopeTooLarge) {
				t.Fatalf("encode: %v", err)
			}
			return
		}
		got, off, _, err := readHeader(bytes.NewReader(append(head, "body"...)))
		if err != nil {
			t.Fatalf("the reader refuses what the writer wrote: %v", err)
		}
		if off != int64(len(head)) {
			t.Fatalf("offset %d, head %d", off, len(head))
		}
		// JSON turns invalid UTF-8 into U+FFFD; valid text comes back as
		// it was, and what was read writes and reads again unchanged.
		if utf8.ValidString(from+rcpt+odd) && (got.From != env.From || !reflect.DeepEqual(got.Recipients, env.Recipients)) {
			t.Fatalf("read back %+v, wrote %+v", got, env)
		}
		again, _, err := encodeHead(&got)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		got2, _, _, err := readHeader(bytes.NewReader(again))
		if err != nil || !reflect.DeepEqual(got2, got) {
			t.Fatalf("second round trip: %v\n%+v\n%+v", err, got, got2)
		}
	})
}

// FuzzLimitsFile: any content of STATE/spool/limits reads without failing,
// and what publish writes reads back.
func FuzzLimitsFile(f *testing.F) {
	f.Add([]byte("min-free 67108864\nmax-per-uid 268435456\nuid 1000 5\n"), int64(1<<20), int64(1000), 1000, int64(7))
	f.Add([]byte("min-free x\nuid\nuid 1000\n\x00"), int64(0), int64(0), 0, int64(0))
	f.Fuzz(func(t *testing.T, data []byte, minFree, maxPer int64, uid int, used int64) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, limitsName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = readLimits(root, uid)
		if minFree < 0 || maxPer < 0 || used < 0 {
			return
		}
		s := &Spool{root: root, log: discardLog()}
		s.limits = Limits{MinFree: minFree, MaxPerUID: maxPer}
		s.publish(map[int]int64{uid: used}, false)
		l, u := readLimits(root, uid)
		if !reflect.DeepEqual(l, s.limits) || u != used {
			t.Fatalf("read back %+v %d, want %+v %d", l, u, s.limits, used)
		}
	})
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
