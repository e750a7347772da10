package framework

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a child process of the test binary that can be stopped and started again in
// place, like a restarted pod: its log is appended to across starts (one header per
// start), and its pid file has hack/lib/common.sh's format, so hack/local-down.sh stops it
// too if the test binary dies without tearing down.
type Process struct {
	// Binary and Args are what each start runs.
	Binary string
	Args   []string

	dir     string // working directory; "" for the test's
	logPath string
	pidPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	waitErr error
}

// spawn starts the process unless it is running.
func (p *Process) spawn() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runningLocked() {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "===== %s e2e: starting %s %s\n", time.Now().Format(time.RFC3339), p.Binary, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Binary, p.Args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile // *os.File: the child writes it directly
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", p.Binary, err)
	}
	logFile.Close()
	exe, _ := filepath.EvalSymlinks(p.Binary)
	_ = os.WriteFile(p.pidPath, fmt.Appendf(nil, "%d %s\n", cmd.Process.Pid, exe), 0o644)
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Process) runningLocked() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked()
}

// Pid of the current (or last) process; 0 before the first start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited is closed when the current process exits.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr is how the last process ended: nil for exit status 0 (or while it runs), an
// *exec.ExitError otherwise.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// LogPath is the process's log file.
func (p *Process) LogPath() string { return p.logPath }

// LogTail returns the last n lines of the log, for failure messages.
func (p *Process) LogTail(n int) string { return tail(p.logPath, n) }

// Kill sends SIGKILL (no graceful shutdown, like a node failure) and waits for the exit.
func (p *Process) Kill() error { return p.signalAndWait(syscall.SIGKILL, 10*time.Second) }

// signalAndWait sends sig and waits up to timeout for the exit.
func (p *Process) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	if !p.runningLocked() {
		p.mu.Unlock()
		return nil
	}
	proc, done := p.cmd.Process, p.done
	p.mu.Unlock()
	if err := proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		_ = os.Remove(p.pidPath)
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running %s after %s", filepath.Base(p.Binary), proc.Pid, timeout, sig)
	}
}

// waitHTTPOK waits until GET url answers 200 OK, failing early with the log's tail if the
// process exits; last says what the last try got.
func (p *Process) waitHTTPOK(ctx context.Context, url string) (last string, err error) {
	done := p.Exited()
	err = pollUntil(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		select {
		case <-done:
			return false, fmt.Errorf("%s exited; log %s:\n%s", filepath.Base(p.Binary), p.logPath, p.LogTail(20))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	return last, err
}
