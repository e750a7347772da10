package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// setNice sets the nice value of every thread of this process (Linux nice is per thread, and
// a new thread or child process inherits the value of the thread that creates it), so the
// processes started afterwards, the control plane and our server, all run at it.
func setNice(nice int) error {
	// Twice: the runtime may start a thread while the first pass runs.
	for range 2 {
		if err := setNiceOnce(nice); err != nil {
			return err
		}
	}
	return nil
}

func setNiceOnce(nice int) error {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("setpriority(thread %d, %d): %w", tid, nice, err)
		}
	}
	return nil
}
