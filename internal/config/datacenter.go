package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Datacenter is what herald reads from the product's node settings when it
// shares Proxmox's files (herald.cfg datacenter-file): Proxmox VE's
// /etc/pve/datacenter.cfg (keys email_from, http_proxy) or Proxmox Backup
// Server's /etc/proxmox-backup/node.cfg (email-from, http-proxy).
type Datacenter struct {
	// EmailFrom is the default from-address of sendmail targets.
	EmailFrom string `json:"email-from,omitempty"`
	// HTTPProxy is the proxy of gotify and webhook targets.
	HTTPProxy string `json:"http-proxy,omitempty"`
}

// LoadDatacenter reads path as proxmox-notify's context does
// (docs/proxmox-compat.md): the first line that starts with "KEY:" gives
// the value, trimmed; an empty value counts as unset. Both spellings of
// each key are read (PVE's email_from, PBS's email-from). A missing file
// is empty, as Proxmox reads it.
func LoadDatacenter(path string) (Datacenter, error) {
	var dc Datacenter
	if path == "" {
		return dc, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return dc, nil
	}
	if err != nil {
		return dc, fmt.Errorf("datacenter-file: %w", err)
	}
	text := string(b)
	dc.EmailFrom = lookupDatacenterKey(text, "email_from", "email-from")
	dc.HTTPProxy = lookupDatacenterKey(text, "http_proxy", "http-proxy")
	return dc, nil
}

func lookupDatacenterKey(text string, keys ...string) string {
	for _, key := range keys {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, key+":"); ok {
				if v = strings.TrimSpace(v); v != "" {
					return v
				}
				break
			}
		}
	}
	return ""
}
