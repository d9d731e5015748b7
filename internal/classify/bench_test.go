package classify

import (
	"os"
	"path/filepath"
	"testing"

	"herald/internal/mailconv"
)

// BenchmarkConvert converts typical mails with and without the built-in
// classifiers: the difference is what classification costs per mail (a
// recognised mail stops at its classifier, an unrecognised one runs them
// all).
func BenchmarkConvert(b *testing.B) {
	for _, name := range []string{"bacula-backup-error", "pbs-tape-load", "negative-personal", "logwatch-pve1"} {
		raw, err := os.ReadFile(filepath.Join(samplesDir, name+".eml"))
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"plain", "classified"} {
			opt := options()
			if mode == "plain" {
				opt.Classifiers = nil
			}
			b.Run(name+"/"+mode, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					mailconv.Convert(raw, opt)
				}
			})
		}
	}
}
