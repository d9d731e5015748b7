package peer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// procAddr formats ap as the kernel does in /proc/net/tcp{,6}.
func procAddr(ap netip.AddrPort) string {
	b := ap.Addr().AsSlice()
	var sb strings.Builder
	for w := 0; w < len(b); w += 4 {
		fmt.Fprintf(&sb, "%08X", binary.NativeEndian.Uint32(b[w:]))
	}
	return fmt.Sprintf("%s:%04X", sb.String(), ap.Port())
}

// FuzzProcNet feeds arbitrary /proc/net/tcp content to the table scan (it
// must not panic or match what is not there), and checks that an address
// written as the kernel writes it parses back.
func FuzzProcNet(f *testing.F) {
	f.Add([]byte("  sl  local_address rem_address   st\n   1: 0100007F:9C40 0100007F:0019 01 00000000:00000000 00:00000000 00000000  1000 0 1 1\n"), []byte{127, 0, 0, 1}, uint16(40000))
	f.Add([]byte("  sl\n   0: 00000000000000000000000001000000:0050 00000000000000000000000001000000:9C40 01 0:0 0:0 0 33 0 1\n"), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(80))
	f.Add([]byte("garbage\n\n: : : : : : : :\n"), []byte{10, 1, 2, 3}, uint16(0))
	f.Fuzz(func(t *testing.T, table, ip []byte, port uint16) {
		p := filepath.Join(t.TempDir(), "tcp")
		if err := os.WriteFile(p, table, 0o600); err != nil {
			t.Fatal(err)
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		ap := netip.AddrPortFrom(a.Unmap(), port)
		uid, found := findSocketUID(p, ap, ap)
		if found && (uid < 0 || !strings.Contains(strings.ToUpper(string(table)), procAddr(ap)[:4])) {
			t.Fatalf("uid %d found for %v in %q", uid, ap, table)
		}
		for _, s := range []string{procAddr(netip.AddrPortFrom(a, port)), string(table)} {
			_, _ = parseProcAddr([]byte(s))
		}
		if got, ok := parseProcAddr([]byte(procAddr(netip.AddrPortFrom(a, port)))); !ok || got != ap {
			t.Fatalf("round trip of %v: %v %v", ap, got, ok)
		}
	})
}
