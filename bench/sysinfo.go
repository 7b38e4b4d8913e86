package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat times. It is 100 on
// every architecture Go supports on Linux (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// processCPU is the user+system CPU time of pid so far, from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces: fields
	// are counted from the last ')'.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// ownCPU is this process's user+system CPU time, more precisely than /proc.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processRSS is the resident set size of pid in bytes, from /proc/<pid>/status.
func processRSS(pid int) (int64, error) {
	kb, err := procStatusField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	return kb * 1024, err
}

// memTotal is the machine's memory in bytes, from /proc/meminfo.
func memTotal() int64 {
	kb, err := procStatusField("/proc/meminfo", "MemTotal:")
	if err != nil {
		return 0
	}
	return kb * 1024
}

// procStatusField reads a "Name:   123 kB" line.
func procStatusField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// loadAverage is the 1, 5 and 15 minute load averages, from /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// raiseOpenFiles raises the soft RLIMIT_NOFILE to the hard limit and returns the new
// soft limit. Each connection is a file descriptor (two when the server runs in the
// same process).
func raiseOpenFiles() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return raised.Cur
		}
	}
	return lim.Cur
}

// openFiles counts this process's open file descriptors.
func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// machine describes where the bench ran.
type machine struct {
	CPUs        int    `json:"cpus"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	MemoryBytes int64  `json:"memory_bytes"`
	LoadStart   string `json:"load_average_start"`
	LoadEnd     string `json:"load_average_end"`
	GoVersion   string `json:"go_version"`
	OpenFiles   uint64 `json:"open_files_limit"`
}

func describeMachine(openFilesLimit uint64) machine {
	return machine{
		CPUs:        runtime.NumCPU(),
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		MemoryBytes: memTotal(),
		LoadStart:   loadAverage(),
		GoVersion:   runtime.Version(),
		OpenFiles:   openFilesLimit,
	}
}

// usage samples a process's CPU and memory at the start and end of a run.
type usage struct {
	pid       int
	startWall time.Time
	startCPU  time.Duration
	startRSS  int64
}

// startUsage samples pid now (pid 0 means none).
func startUsage(pid int) *usage {
	u := &usage{pid: pid, startWall: time.Now()}
	if pid == 0 {
		return u
	}
	if pid == os.Getpid() {
		u.startCPU = ownCPU()
	} else {
		u.startCPU, _ = processCPU(pid)
	}
	u.startRSS, _ = processRSS(pid)
	return u
}

// processUsage is what a process used between two samples.
type processUsage struct {
	Label      string  `json:"label"`
	PID        int     `json:"pid,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds"`
	WallSec    float64 `json:"wall_seconds"`
	Cores      float64 `json:"cores"`
	RSSStart   int64   `json:"rss_start_bytes,omitempty"`
	RSSEnd     int64   `json:"rss_end_bytes,omitempty"`
}

// end samples the process again.
func (u *usage) end(label string) *processUsage {
	if u.pid == 0 {
		return nil
	}
	var cpu time.Duration
	var err error
	if u.pid == os.Getpid() {
		cpu = ownCPU()
	} else if cpu, err = processCPU(u.pid); err != nil {
		return &processUsage{Label: label + " (gone: " + err.Error() + ")", PID: u.pid}
	}
	rss, _ := processRSS(u.pid)
	wall := time.Since(u.startWall).Seconds()
	used := (cpu - u.startCPU).Seconds()
	return &processUsage{
		Label: label, PID: u.pid,
		CPUSeconds: used, WallSec: wall, Cores: used / wall,
		RSSStart: u.startRSS, RSSEnd: rss,
	}
}
