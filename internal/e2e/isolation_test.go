package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLocalDeliveryIgnoresHangingRemotes: four webhook targets whose server
// accepts connections and never answers fill every remote slot; the file
// target (named to sort after them, so it is dispatched last) still gets
// the event at once instead of after the webhooks' 10 s timeout.
func TestLocalDeliveryIgnoresHangingRemotes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	var cfg, priv strings.Builder
	for i := range 4 {
		fmt.Fprintf(&cfg, "webhook: hang%d\n\turl http://%s/hook\n\tmethod post\n\n", i, l.Addr())
		fmt.Fprintf(&priv, "webhook: hang%d\n\n", i)
	}
	cfg.WriteString("file: zz-events\n\tpath %[1]s/events.jsonl\n\nmatcher: everything\n")
	for i := range 4 {
		fmt.Fprintf(&cfg, "\ttarget hang%d\n", i)
	}
	cfg.WriteString("\ttarget zz-events\n")
	d := newDaemon(t, cfg.String())
	writeFile(t, filepath.Join(d.configDir, "notifications-priv.cfg"), priv.String(), 0o600)
	d.start()

	start := time.Now()
	d.run("Subject: local first\n\nbody\n", d.shim, "root")
	d.waitEvent("local first")
	took := time.Since(start)
	t.Logf("file target delivered %v after submission while 4 remote targets hang", took)
	if took > 3*time.Second {
		t.Errorf("the file delivery took %v: it waited behind the hanging webhooks", took)
	}
}
