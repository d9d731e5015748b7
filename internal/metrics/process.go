package metrics

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The Go runtime's and the process's standard series, under the names and
// meanings every Prometheus exporter uses (go_*, process_*), so existing
// dashboards and alerts on them work unchanged.

var (
	famGoroutines = &family{name: "go_goroutines", typ: "gauge",
		help: "Number of goroutines that currently exist."}
	famThreads = &family{name: "go_threads", typ: "gauge",
		help: "Number of OS threads created."}
	famGoInfo = &family{name: "go_info", typ: "gauge",
		help: "Information about the Go environment.", labels: []string{"version"}}
	famGC = &family{name: "go_gc_duration_seconds", typ: "summary",
		help: "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."}
	famAlloc = &family{name: "go_memstats_alloc_bytes", typ: "gauge",
		help: "Number of heap bytes allocated and currently in use."}
	famAllocTotal = &family{name: "go_memstats_alloc_bytes_total", typ: "counter",
		help: "Total number of heap bytes allocated, even if freed."}
	famSys = &family{name: "go_memstats_sys_bytes", typ: "gauge",
		help: "Number of bytes obtained from system."}
	famHeapInuse = &family{name: "go_memstats_heap_inuse_bytes", typ: "gauge",
		help: "Number of heap bytes that are in use."}
	famHeapObjects = &family{name: "go_memstats_heap_objects", typ: "gauge",
		help: "Number of currently allocated objects."}
	famNextGC = &family{name: "go_memstats_next_gc_bytes", typ: "gauge",
		help: "Number of heap bytes when next garbage collection will take place."}
	famLastGC = &family{name: "go_memstats_last_gc_time_seconds", typ: "gauge",
		help: "Number of seconds since 1970 of last garbage collection."}

	famCPU = &family{name: "process_cpu_seconds_total", typ: "counter",
		help: "Total user and system CPU time spent in seconds."}
	famRSS = &family{name: "process_resident_memory_bytes", typ: "gauge",
		help: "Resident memory size in bytes."}
	famVSize = &family{name: "process_virtual_memory_bytes", typ: "gauge",
		help: "Virtual memory size in bytes."}
	famOpenFDs = &family{name: "process_open_fds", typ: "gauge",
		help: "Number of open file descriptors."}
	famMaxFDs = &family{name: "process_max_fds", typ: "gauge",
		help: "Maximum number of open file descriptors."}
	famStart = &family{name: "process_start_time_seconds", typ: "gauge",
		help: "Start time of the process since unix epoch in seconds."}
)

// one is a family's only sample.
func one(v float64) []sample { return []sample{{value: v}} }

// writeRuntime writes the Go runtime's series; st is /proc/self/status
// (procStatus; nil: unreadable).
func writeRuntime(e *expo, st map[string]int64) {
	e.family(famGoroutines, one(float64(runtime.NumGoroutine())))
	if n, ok := st["Threads"]; ok {
		e.family(famThreads, one(float64(n)))
	}
	e.family(famGoInfo, []sample{{values: []string{runtime.Version()}, value: 1}})

	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5) // min, 25 %, 50 %, 75 %, max
	debug.ReadGCStats(&gc)
	var s []sample
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		s = append(s, sample{value: gc.PauseQuantiles[i].Seconds(), extra: [2]string{"quantile", q}})
	}
	s = append(s, sample{suffix: "_sum", value: gc.PauseTotal.Seconds()},
		sample{suffix: "_count", value: float64(gc.NumGC)})
	e.family(famGC, s)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	e.family(famAlloc, one(float64(ms.Alloc)))
	e.family(famAllocTotal, one(float64(ms.TotalAlloc)))
	e.family(famSys, one(float64(ms.Sys)))
	e.family(famHeapInuse, one(float64(ms.HeapInuse)))
	e.family(famHeapObjects, one(float64(ms.HeapObjects)))
	e.family(famNextGC, one(float64(ms.NextGC)))
	e.family(famLastGC, one(float64(ms.LastGC)/1e9))
}

// writeProcess writes the process's series; st is as for writeRuntime.
func writeProcess(e *expo, st map[string]int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		e.family(famCPU, one(cpu.Seconds()))
	}
	// /proc/self/status gives kB.
	if v, ok := st["VmRSS"]; ok {
		e.family(famRSS, one(float64(v)*1024))
	}
	if v, ok := st["VmSize"]; ok {
		e.family(famVSize, one(float64(v)*1024))
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		e.family(famOpenFDs, one(float64(len(ents)-1))) // less the directory's own fd
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		e.family(famMaxFDs, one(float64(lim.Cur)))
	}
	if t, ok := startTime(); ok {
		e.family(famStart, one(t))
	}
}

// procStatus reads the numeric fields of /proc/self/status (the first
// number of each line: kB for the Vm* lines).
func procStatus() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(v))
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[string(k)] = n
		}
	}
	return out, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// startTime is the process's start in Unix seconds: its start tick in
// /proc/self/stat after the boot time in /proc/stat.
func startTime() (float64, bool) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, false
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(all) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			boot, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, false
			}
			return float64(boot) + float64(ticks)/clockTicks, true
		}
	}
	return 0, false
}
