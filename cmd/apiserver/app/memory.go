package app

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
)

// memoryLimitShare is the part of the container's memory limit the Go heap
// may use by default: the rest is for goroutine stacks, etcd's mapped
// database file and other memory outside the Go heap, which the limit also
// counts.
const memoryLimitShare = 0.85

// cgroupRoot is where the cgroup file systems are mounted; a variable for the
// tests.
var cgroupRoot = "/sys/fs/cgroup"

// procSelfCgroup lists the process's cgroups; a variable for the tests.
var procSelfCgroup = "/proc/self/cgroup"

// applyMemoryLimit sets the Go runtime's soft memory limit (GOMEMLIMIT):
// without one the heap grows to twice the live data before a collection
// (GOGC=100), so a server holding 150 MB of objects sits at 300 MB and more,
// and under a container limit it is killed rather than made to collect.
// flagValue is --memory-limit: "0" turns the limit off, a quantity sets it,
// "" derives it from the cgroup's memory limit unless GOMEMLIMIT is set in
// the environment, which then wins. It returns the limit applied, 0 for none.
func applyMemoryLimit(flagValue string) (int64, error) {
	limit, source, err := memoryLimit(flagValue, os.Getenv("GOMEMLIMIT"), cgroupMemoryLimit())
	if err != nil {
		return 0, err
	}
	switch {
	case source == "GOMEMLIMIT":
		// The runtime read it at start.
		klog.InfoS("Go memory limit from the environment", "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
		return debug.SetMemoryLimit(-1), nil
	case limit > 0:
		debug.SetMemoryLimit(limit)
		klog.InfoS("Go memory limit set", "bytes", limit, "source", source)
	case source == "--memory-limit":
		debug.SetMemoryLimit(math.MaxInt64)
	}
	return limit, nil
}

// memoryLimit decides the Go memory limit from the flag, the GOMEMLIMIT
// environment variable and the cgroup's limit (0 when it has none), and
// names where it came from.
func memoryLimit(flagValue, env string, cgroupLimit int64) (int64, string, error) {
	if flagValue != "" {
		q, err := resource.ParseQuantity(flagValue)
		if err != nil {
			return 0, "", fmt.Errorf("--memory-limit %q: %w", flagValue, err)
		}
		if q.Sign() < 0 {
			return 0, "", fmt.Errorf("--memory-limit must not be negative, got %s", flagValue)
		}
		return q.Value(), "--memory-limit", nil
	}
	if env != "" {
		return 0, "GOMEMLIMIT", nil
	}
	if cgroupLimit > 0 {
		return int64(float64(cgroupLimit) * memoryLimitShare), "cgroup memory limit", nil
	}
	return 0, "", nil
}

// cgroupMemoryLimit is the memory limit of the process's cgroup in bytes
// (cgroup v2 memory.max, or v1 memory.limit_in_bytes), 0 if there is none or
// it cannot be read.
func cgroupMemoryLimit() int64 {
	var candidates []string
	for _, line := range readLines(procSelfCgroup) {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			candidates = append(candidates, filepath.Join(cgroupRoot, parts[2], "memory.max"))
		case hasController(parts[1], "memory"):
			candidates = append(candidates, filepath.Join(cgroupRoot, "memory", parts[2], "memory.limit_in_bytes"))
		}
	}
	// In a container the cgroup namespace roots the files at the mount.
	candidates = append(candidates, filepath.Join(cgroupRoot, "memory.max"), filepath.Join(cgroupRoot, "memory", "memory.limit_in_bytes"))
	for _, path := range candidates {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		return parseCgroupLimit(strings.TrimSpace(string(data)))
	}
	return 0
}

// parseCgroupLimit reads a memory.max or memory.limit_in_bytes value: "max"
// and cgroup v1's page-rounded MaxInt64 mean no limit.
func parseCgroupLimit(s string) int64 {
	if s == "max" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return 0
	}
	return n
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
