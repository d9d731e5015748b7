package mailconv

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkConvert measures whole conversions of typical mails: a plain
// 2.8 KB Bacula job report, a multipart/alternative vzdump mail, an HTML-only
// alert that goes through html2text, and a mail with a PDF attachment.
func BenchmarkConvert(b *testing.B) {
	for _, name := range []string{"bacula-backup-ok", "vzdump-ok", "truenas-html-only", "pdf-attachment"} {
		raw, err := os.ReadFile(filepath.Join(mailsDir, name+".eml"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			opt := goldenOptions()
			for b.Loop() {
				if ev := Convert(raw, opt); ev.Title == "" {
					b.Fatal("no title")
				}
			}
		})
	}
}
