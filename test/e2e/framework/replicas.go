package framework

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file runs what a highly available installation has beside the registered server:
// an external etcd that several replicas share (--etcd-servers), and further replicas of
// rollout-apiserver that are not behind the APIServices (only one port can be), whose
// controllers still contend for the leader-election Lease and whose APIs serve on their own
// ports.

// ExternalEtcd is a one-member etcd cluster (bin/etcd) on free loopback ports, with its data
// in a temp folder. Replicas started with --etcd-servers=URL share it.
type ExternalEtcd struct {
	Process
	URL     string // http://127.0.0.1:PORT, for --etcd-servers
	dataDir string
}

// StartExternalEtcd starts bin/etcd and waits until /health answers. Stop it with Stop (the
// pid file in RUN_DIR/pids also lets hack/local-down.sh stop it if the test binary dies).
func (c *Cluster) StartExternalEtcd(ctx context.Context, name string) (*ExternalEtcd, error) {
	clientPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "rollout-e2e-etcd-")
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	e := &ExternalEtcd{
		Process: Process{
			Binary: filepath.Join(c.RootDir, "bin", "etcd"),
			Args: []string{
				"--name=" + name,
				"--data-dir=" + filepath.Join(dataDir, "data"),
				"--listen-client-urls=" + url,
				"--advertise-client-urls=" + url,
				"--listen-peer-urls=" + peer,
				"--initial-advertise-peer-urls=" + peer,
				"--initial-cluster=" + name + "=" + peer,
				"--log-level=warn",
			},
			logPath: filepath.Join(c.RunDir, "logs", name+".log"),
			pidPath: filepath.Join(c.RunDir, "pids", name+".pid"),
		},
		URL:     url,
		dataDir: dataDir,
	}
	if err := e.spawn(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	last, err := e.waitHTTPOK(ctx, e.URL+"/health")
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("external etcd %s not healthy (last: %s): %w", e.URL, last, err)
	}
	logf("external etcd %s ready (pid %d, data %s)", e.URL, e.Pid(), dataDir)
	return e, nil
}

// Stop terminates etcd (SIGKILL after 10s) and removes its data.
func (e *ExternalEtcd) Stop() error {
	if err := e.signalAndWait(syscall.SIGTERM, 10*time.Second); err != nil {
		_ = e.Kill()
	}
	return os.RemoveAll(e.dataDir)
}

// Candidate is a further replica of rollout-apiserver beside a registered Server: same
// binary, serving certificate and kubeconfigs, its own port, log, pid file and (unused with
// --etcd-servers) embedded-etcd folder. No APIService points at it, so it is reached
// directly (RESTConfig); its controller contends for the same Lease as the registered one.
type Candidate struct {
	*Server
	Name string
}

// StartCandidate starts a replica named name with the registered server's flags (which
// include reg's ExtraArgs, e.g. --etcd-servers and the leader-election flags), with
// --secure-port and --etcd-data-dir replaced, plus extraArgs; it waits for /readyz only.
// It is stopped at Teardown at the latest.
func (c *Cluster) StartCandidate(ctx context.Context, reg *Server, name string, extraArgs ...string) (*Candidate, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(c.RunDir, "rollout", name+"-etcd-data")
	var args []string
	for _, a := range reg.Args {
		switch {
		case strings.HasPrefix(a, "--secure-port="), strings.HasPrefix(a, "--etcd-data-dir="):
			continue
		}
		args = append(args, a)
	}
	args = append(args, "--secure-port="+strconv.Itoa(port), "--etcd-data-dir="+dataDir)
	args = append(args, extraArgs...)
	s := &Server{
		Process: Process{
			Binary:  reg.Binary,
			Args:    args,
			logPath: filepath.Join(c.RunDir, "logs", name+".log"),
			pidPath: filepath.Join(c.RunDir, "pids", name+".pid"),
		},
		c:       c,
		URL:     fmt.Sprintf("https://127.0.0.1:%d", port),
		CAFile:  reg.CAFile,
		timeout: reg.timeout,
	}
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
	cand := &Candidate{Server: s, Name: name}
	return cand, cand.Start(ctx)
}

// Start starts the process if it is not running and waits for /readyz (there is no
// APIService to wait for).
func (r *Candidate) Start(ctx context.Context) error {
	if err := r.spawn(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	start := time.Now()
	if err := r.WaitReady(ctx); err != nil {
		return fmt.Errorf("replica %s: %w", r.Name, err)
	}
	logf("rollout-apiserver replica %s (pid %d) ready on %s in %s", r.Name, r.Pid(), r.URL, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// Restart stops the replica gracefully (if running) and starts it again.
func (r *Candidate) Restart(ctx context.Context) error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.Start(ctx)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// KillRunningServers SIGKILLs every server process this test binary started (StartServer,
// StartCandidate, SharedServer) that is still running. Starting a server on the registered
// port otherwise first stops the previous one with SIGTERM, which can take the full
// shutdown timeout while clients hold watches open.
func (c *Cluster) KillRunningServers() {
	c.mu.Lock()
	servers := append([]*Server(nil), c.servers...)
	c.mu.Unlock()
	for _, s := range servers {
		if s.Running() {
			_ = s.Kill()
		}
	}
}
