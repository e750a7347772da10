package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// samples collects latencies from many goroutines.
type samples struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

func (s *samples) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.d)
}

// pct is the nearest-rank percentile (p in 0..100).
func (s *samples) pct(p float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.d) == 0 {
		return 0
	}
	d := append([]time.Duration(nil), s.d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	rank := int(p/100*float64(len(d))+0.999999) - 1
	rank = min(max(rank, 0), len(d)-1)
	return d[rank]
}

// --- processes: CPU time and memory from /proc ---------------------------------------------

// clockTicks is USER_HZ, 100 on every Linux this runs on (no cgo for sysconf).
const clockTicks = 100

// cpuSeconds is utime+stime of pid.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')') // comm may contain spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// after ") ": state(3) ppid ... utime is field 14, stime 15 (1-based over the whole line)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// memKiB reads VmRSS, its file-backed part RssFile, and VmHWM (peak RSS) of pid in KiB.
func memKiB(pid int) (rss, file, hwm int64) {
	if pid <= 0 {
		return 0, 0, 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		case "RssFile":
			file = n
		}
	}
	return rss, file, hwm
}

// readPidFile reads the "PID EXE" pid files hack/lib/common.sh writes.
func readPidFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("%s is empty", path)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0, fmt.Errorf("%s: process %d is not running", path, pid)
	}
	return pid, nil
}

// procSet are the server-side processes whose CPU a phase is charged for.
type procSet struct {
	kas, etcd, ours int
}

type cpuSnap struct{ kas, etcd, ours float64 }

func (p procSet) snap() cpuSnap {
	return cpuSnap{cpuSeconds(p.kas), cpuSeconds(p.etcd), cpuSeconds(p.ours)}
}

func (a cpuSnap) sub(b cpuSnap) cpuSnap {
	return cpuSnap{a.kas - b.kas, a.etcd - b.etcd, a.ours - b.ours}
}
func (a cpuSnap) add(b cpuSnap) cpuSnap {
	return cpuSnap{a.kas + b.kas, a.etcd + b.etcd, a.ours + b.ours}
}
func (a cpuSnap) total() float64 { return a.kas + a.etcd + a.ours }

type memSnap struct {
	kasRSS, etcdRSS, oursRSS    int64 // KiB
	kasFile, etcdFile, oursFile int64
	kasHWM, etcdHWM, oursHWM    int64
}

func (p procSet) mem() memSnap {
	var m memSnap
	m.kasRSS, m.kasFile, m.kasHWM = memKiB(p.kas)
	m.etcdRSS, m.etcdFile, m.etcdHWM = memKiB(p.etcd)
	m.oursRSS, m.oursFile, m.oursHWM = memKiB(p.ours)
	return m
}

func (a memSnap) sub(b memSnap) memSnap {
	return memSnap{kasRSS: a.kasRSS - b.kasRSS, etcdRSS: a.etcdRSS - b.etcdRSS, oursRSS: a.oursRSS - b.oursRSS,
		kasFile: a.kasFile - b.kasFile, etcdFile: a.etcdFile - b.etcdFile, oursFile: a.oursFile - b.oursFile}
}

func (a memSnap) add(b memSnap) memSnap {
	return memSnap{kasRSS: a.kasRSS + b.kasRSS, etcdRSS: a.etcdRSS + b.etcdRSS, oursRSS: a.oursRSS + b.oursRSS,
		kasFile: a.kasFile + b.kasFile, etcdFile: a.etcdFile + b.etcdFile, oursFile: a.oursFile + b.oursFile}
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
