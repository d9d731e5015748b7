package monitor

import (
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"herald/internal/config"
	"herald/internal/event"
)

// Usage is how full a file system is, in percent of what its users may
// use: blocks as df(1) counts them (used / (used + available to
// unprivileged users)) and inodes.
type Usage struct {
	Blocks float64
	Inodes float64
}

// Used returns the larger of the two percentages: either running out
// stops writes.
func (u Usage) Used() float64 { return max(u.Blocks, u.Inodes) }

// Statfs reads the usage of the file system holding path.
func Statfs(path string) (Usage, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return Usage{}, err
	}
	var u Usage
	used := s.Blocks - s.Bfree
	if used+s.Bavail > 0 {
		u.Blocks = float64(used) * 100 / float64(used+s.Bavail)
	}
	if s.Files > 0 && s.Ffree <= s.Files {
		u.Inodes = float64(s.Files-s.Ffree) * 100 / float64(s.Files)
	}
	return u, nil
}

func pct(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// pollUsage checks a usage watch when its interval has passed (measured
// on the monotonic clock) and returns when it is next due. Callers hold
// e.mu.
func (e *Engine) pollUsage(u *config.Usage, now time.Time, mono time.Duration) (time.Time, bool) {
	s := e.st.Usage[u.Name]
	if s == nil || s.Paused || u.Disable {
		return time.Time{}, false
	}
	if next, ok := e.nextPoll[u.Name]; ok && mono < next {
		return now.Add(next - mono), true
	}
	e.nextPoll[u.Name] = mono + u.Interval
	due := now.Add(u.Interval)
	got, err := e.opt.Statfs(u.Path)
	if err != nil {
		if s.Error != err.Error() {
			// Degrade, never go silent: the watch says once that it is
			// blind, as a warning routed like its alarms.
			e.log.Error("usage watch cannot read its file system", "monitor", u.Name, "path", u.Path, "err", err)
			if werr := e.update(func(st *fileState) bool {
				first := st.Usage[u.Name].Error == ""
				st.Usage[u.Name].Error = err.Error()
				if first {
					st.Outbox = append(st.Outbox, e.usageErrorEvent(u, err, now))
				}
				return true
			}); werr != nil {
				e.log.Error("monitor state not written", "monitor", u.Name, "err", werr)
			}
		}
		return due, true
	}
	used := got.Used()
	above := s.Above
	switch {
	case !above && used >= u.Threshold:
		above = true
	case above && used < u.Threshold-u.Hysteresis:
		above = false
	}
	if above == s.Above && s.Error == "" && !s.Checked.IsZero() {
		// Nothing to report: keep the figures in memory; the next durable
		// write carries them.
		s.UsedPercent, s.Checked = used, now
		return due, true
	}
	if err := e.update(func(st *fileState) bool {
		c := st.Usage[u.Name]
		changed := c.Above != above
		c.Above, c.UsedPercent, c.Checked, c.Error = above, used, now, ""
		if changed {
			st.Outbox = append(st.Outbox, e.usageEvent(u, got, above, now))
		}
		return true
	}); err != nil {
		e.log.Error("monitor state not written; the check is retried", "monitor", u.Name, "err", err)
		e.nextPoll[u.Name] = mono + 5*time.Second
		return now.Add(5 * time.Second), true
	}
	return due, true
}

func (e *Engine) usageEvent(u *config.Usage, got Usage, above bool, now time.Time) *event.Event {
	used := got.Used()
	sev := event.Warning
	title := fmt.Sprintf("%s: %s is %s%% full (threshold %s%%)", e.hostname, u.Path, pct(used), pct(u.Threshold))
	if !above {
		sev = event.Info
		title = fmt.Sprintf("%s: %s is back below its threshold: %s%% full", e.hostname, u.Path, pct(used))
	}
	body := fmt.Sprintf("File system usage of %s (watch %s): blocks %s%%, inodes %s%%; threshold %s%%, hysteresis %s.\n",
		u.Path, u.Name, pct(got.Blocks), pct(got.Inodes), pct(u.Threshold), pct(u.Hysteresis))
	if u.Comment != "" {
		body += "Comment: " + u.Comment + "\n"
	}
	return &event.Event{ID: event.NewID(), Timestamp: now.Truncate(time.Second), Severity: sev, Title: title, Body: body,
		Fields: map[string]string{
			event.FieldType:       TypeUsage,
			FieldMonitor:          u.Name,
			FieldPath:             u.Path,
			FieldUsedPercent:      pct(used),
			"threshold":           pct(u.Threshold),
			"blocks-used-percent": pct(got.Blocks),
			"inodes-used-percent": pct(got.Inodes),
		}}
}

func (e *Engine) usageErrorEvent(u *config.Usage, err error, now time.Time) *event.Event {
	return &event.Event{ID: event.NewID(), Timestamp: now.Truncate(time.Second), Severity: event.Warning,
		Title: fmt.Sprintf("%s: usage watch %s cannot read %s", e.hostname, u.Name, u.Path),
		Body: fmt.Sprintf("The usage watch %s cannot measure the file system of %s: %v\nIt tries again every %s; nothing is reported until it can.\n",
			u.Name, u.Path, err, u.Interval),
		Fields: map[string]string{
			event.FieldType: TypeUsage,
			FieldMonitor:    u.Name,
			FieldPath:       u.Path,
			"error":         err.Error(),
		}}
}
