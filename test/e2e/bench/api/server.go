package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// sessionServer is our server re-started in its own session (setsid), as hack/local-up.sh and
// hack/local-register.sh start every daemon. The framework starts it as a plain child of the
// test process; here that would put it in the client's session, and with the kernel's
// autogroup scheduling (one CPU share per session) our server would share a CPU share with
// the load generator while kube-apiserver and etcd each have their own: unfair to us
// whenever the CPU is saturated.
type sessionServer struct {
	cmd     *exec.Cmd
	done    chan struct{}
	pidPath string
}

// restartInOwnSession kills the framework's instance of the server (registration, certs,
// port and data dir stay) and starts the same binary with the same flags in a new session,
// then waits for /readyz and the APIServices.
func restartInOwnSession(ctx context.Context, c *framework.Cluster, srv *framework.Server) (*sessionServer, error) {
	if err := srv.Kill(); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(srv.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "===== %s bench-api: starting %s %s (own session)\n", time.Now().Format(time.RFC3339), srv.Binary, strings.Join(srv.Args, " "))
	cmd := exec.Command(srv.Binary, srv.Args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", srv.Binary, err)
	}
	s := &sessionServer{cmd: cmd, done: make(chan struct{}), pidPath: filepath.Join(c.RunDir, "pids", "rollout-apiserver.pid")}
	go func() { _ = cmd.Wait(); close(s.done) }()
	// The pid-file format of hack/lib/common.sh: hack/local-down.sh (the framework's teardown)
	// stops it too should this program die first.
	exe, _ := filepath.EvalSymlinks(srv.Binary)
	_ = os.WriteFile(s.pidPath, fmt.Appendf(nil, "%d %s\n", cmd.Process.Pid, exe), 0o644)

	hc, err := newHTTPClient(srv.RESTConfig())
	if err != nil {
		return s, err
	}
	err = retry(ctx, 90*time.Second, func() error {
		select {
		case <-s.done:
			return errors.New("rollout-apiserver exited; see " + srv.LogPath())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/readyz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	return s, c.WaitAPIServiceAvailable(ctx)
}

func (s *sessionServer) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits up to grace for a graceful exit, then SIGKILLs. It returns
// how long the graceful part took and whether it completed.
func (s *sessionServer) stop(grace time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		_ = os.Remove(s.pidPath)
		return time.Since(start), true
	case <-time.After(grace):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	_ = os.Remove(s.pidPath)
	return time.Since(start), false
}

// setAutogroupNice gives the scheduling autogroup (session) of pid the nice value: with
// autogroup scheduling on, a thread's own nice only counts inside its session.
func setAutogroupNice(pid, nice int) error {
	path := "/proc/self/autogroup"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/autogroup"
	}
	if _, err := os.Stat(path); err != nil {
		return nil // no autogroup scheduling in this kernel
	}
	return os.WriteFile(path, []byte(strconv.Itoa(nice)), 0o644)
}

// runPids are the pids of the run folder's daemons (hack/lib/common.sh pid files).
func runPids(runDir string) []int {
	files, _ := filepath.Glob(filepath.Join(runDir, "pids", "*.pid"))
	var pids []int
	for _, f := range files {
		if pid, err := readPidFile(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
