package web

import (
	"fmt"
	"strings"

	"herald/internal/monitor"
)

// MonitorRows is how the page shows the monitor engine's heartbeats and
// usage watches: for a watch its last check and how full the file system
// is, for a heartbeat its last success, why it is down, its next deadline
// and its comment.
func MonitorRows(list []monitor.Status) []Monitor {
	out := make([]Monitor, 0, len(list))
	for _, st := range list {
		m := Monitor{Name: st.Name, State: st.State}
		switch st.Kind {
		case "usage":
			if st.LastCheck != nil {
				m.Last = *st.LastCheck
			}
			if st.UsedPercent != nil {
				m.Detail = fmt.Sprintf("%s %.1f%% used (threshold %.0f%%)", st.Path, *st.UsedPercent, st.Threshold)
			} else if st.Error != "" {
				m.Detail = st.Path + ": " + st.Error
			}
		default:
			if st.LastSuccess != nil {
				m.Last = *st.LastSuccess
			}
			var parts []string
			if st.Reason != "" {
				parts = append(parts, "down: "+st.Reason)
			}
			if st.NextDeadline != nil {
				parts = append(parts, "next deadline "+st.NextDeadline.Local().Format("2006-01-02 15:04"))
			}
			if st.Comment != "" {
				parts = append(parts, st.Comment)
			}
			m.Detail = strings.Join(parts, "; ")
		}
		out = append(out, m)
	}
	return out
}
