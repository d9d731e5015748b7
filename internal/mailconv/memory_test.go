package mailconv

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// bigMails are 50 MB mails of the shapes that arrive: one long text (a
// log), and a short text with a large attachment (a backup report).
func bigMails() map[string][]byte {
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	text := "From: backup@example.com\r\nTo: root@example.com\r\nSubject: big\r\n\r\n" + strings.Repeat(line, 50<<20/len(line))
	b64 := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2", 1) + "\r\n" // 66 bytes
	attach := "From: backup@example.com\r\nTo: root@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe backup report is attached.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"report.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Repeat(b64, 50<<20/len(b64)) + "--b1--\r\n"
	return map[string][]byte{"text": []byte(text), "attachment": []byte(attach)}
}

// TestConvertBigMailMemory bounds what converting a 50 MB mail allocates:
// the text is decoded only as far as the body cap needs (about 4 MiB of
// input, docs/limits.md), the attachment only measured, and the raw mail
// is never copied. Copying the raw once would cost 50 MB alone.
func TestConvertBigMailMemory(t *testing.T) {
	for name, raw := range bigMails() {
		t.Run(name, func(t *testing.T) {
			opt := Options{ID: "x", Now: time.Unix(0, 0), Hostname: "h"}
			Convert(raw, opt) // warm up lazily built tables
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ev := Convert(raw, opt)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %.1f MiB allocated converting %d MiB", name, float64(alloc)/(1<<20), len(raw)>>20)
			if alloc > 16<<20 {
				t.Errorf("converting a %d MiB mail allocated %.1f MiB, want at most 16 MiB", len(raw)>>20, float64(alloc)/(1<<20))
			}
			if &ev.Mail.Raw[0] != &raw[0] {
				t.Error("the event's raw mail is a copy")
			}
			if ev.Title != "big" || len(ev.Body) == 0 || len(ev.Body) > MaxBodyBytes+4096 {
				t.Errorf("event title %q, body %d bytes", ev.Title, len(ev.Body))
			}
		})
	}
}
