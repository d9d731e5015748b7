package config

// herald.cfg keys of the event history (internal/history).
func init() {
	daemonKeys["history-retention"] = daemonKey{parse: func(d *Daemon, v string, _ bool) string {
		return parseDurationKey(&d.HistoryRetention, v)
	}}
	daemonKeys["history-max-size"] = daemonKey{parse: func(d *Daemon, v string, _ bool) string {
		n, ok := parseSize(v)
		if !ok || n < 64<<10 {
			return "must be a size of at least 64K, optionally with K, M or G (powers of 1024)"
		}
		d.HistoryMaxSize = n
		return ""
	}}
}
