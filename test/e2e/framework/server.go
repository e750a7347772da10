package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// APIServices are the APIService objects that register our group.
var APIServices = []string{"v1beta1.rollout.kruise.io", "v1alpha1.rollout.kruise.io"}

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// ServerOptions tune StartServer.
type ServerOptions struct {
	// ExtraArgs are appended to the flags hack/local-register.sh writes (bind address, port,
	// certs, kubeconfigs, --etcd-data-dir).
	ExtraArgs []string
	// ReadyTimeout bounds the wait for /readyz and for the APIServices (default 90s).
	ReadyTimeout time.Duration
}

// Server is rollout-apiserver running as a child process of the test binary, registered
// with the cluster. Its port, certificates and embedded-etcd data dir stay the same across
// Kill/Stop/Start, like a pod restarted in place.
type Server struct {
	c       *Cluster
	Binary  string
	Args    []string
	URL     string // https://127.0.0.1:PORT
	CAFile  string // CA of the serving cert (the APIServices' caBundle)
	logPath string
	pidPath string
	timeout time.Duration

	// HostKubeconfig is how the server reaches the host cluster (--kubeconfig and the
	// delegated authn/authz kubeconfigs): by default a token of its ServiceAccount,
	// bound to the shipped RBAC (hack/local-register.sh, ROLLOUT_HOST_IDENTITY).
	HostKubeconfig string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	waitErr error
}

// BuildServer builds ./cmd/apiserver into bin/rollout-apiserver (once per test process),
// so the tests never run a stale binary. E2E_SKIP_BUILD=1 uses the binary as it is.
func (c *Cluster) BuildServer(ctx context.Context) error {
	bin := filepath.Join(c.RootDir, "bin", "rollout-apiserver")
	if os.Getenv("E2E_SKIP_BUILD") == "1" {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("E2E_SKIP_BUILD=1 but %s is missing: go build -o bin/rollout-apiserver ./cmd/apiserver", bin)
		}
		return nil
	}
	return c.buildOnce(ctx, bin)
}

func (c *Cluster) buildOnce(ctx context.Context, bin string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.built {
		return nil
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/apiserver")
	cmd.Dir = c.RootDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build -o bin/rollout-apiserver ./cmd/apiserver: %w\n%s", err, out)
	}
	logf("built bin/rollout-apiserver in %s", time.Since(start).Round(100*time.Millisecond))
	c.built = true
	return nil
}

// StartServer registers rollout-apiserver (hack/local-register.sh with ROLLOUT_START=0:
// certs, ExternalName Service, APIServices, RBAC), starts it, and waits until it is ready
// and both APIServices are Available. The server is stopped at Teardown at the latest.
func (c *Cluster) StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	if err := c.BuildServer(ctx); err != nil {
		return nil, err
	}
	env := []string{"ROLLOUT_START=0", "ROLLOUT_EXTRA_ARGS=" + strings.Join(opts.ExtraArgs, " ")}
	if out, err := c.script(ctx, nil, "hack/local-register.sh", env...); err != nil {
		return nil, fmt.Errorf("hack/local-register.sh: %w\n%s", err, out)
	}
	renv, err := readEnvFile(filepath.Join(c.RunDir, "rollout", "env"))
	if err != nil {
		return nil, err
	}
	args, err := os.ReadFile(renv["ROLLOUT_ARGS_FILE"])
	if err != nil {
		return nil, err
	}
	s := &Server{
		c:       c,
		Binary:  renv["ROLLOUT_BINARY"],
		Args:    strings.Fields(string(args)),
		URL:     renv["ROLLOUT_URL"],
		CAFile:  renv["ROLLOUT_CA"],
		logPath: renv["ROLLOUT_LOG"],
		pidPath: renv["ROLLOUT_PID_FILE"],
		timeout: opts.ReadyTimeout,

		HostKubeconfig: renv["ROLLOUT_HOST_KUBECONFIG"],
	}
	if s.timeout == 0 {
		s.timeout = 90 * time.Second
	}
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
	return s, s.Start(ctx)
}

// Start starts the process (if it is not running) and waits until it is ready and the
// APIServices are Available.
func (s *Server) Start(ctx context.Context) error {
	if err := s.spawn(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	if err := s.WaitReady(ctx); err != nil {
		return err
	}
	if err := s.c.WaitAPIServiceAvailable(ctx, APIServices...); err != nil {
		return err
	}
	logf("rollout-apiserver (pid %d) ready and registered in %s", s.Pid(), time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (s *Server) spawn() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runningLocked() {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "===== %s e2e: starting %s %s\n", time.Now().Format(time.RFC3339), s.Binary, strings.Join(s.Args, " "))
	cmd := exec.Command(s.Binary, s.Args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile // *os.File: the child writes it directly
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", s.Binary, err)
	}
	logFile.Close()
	// Same pid-file format as hack/lib/common.sh, so hack/local-down.sh stops it too if the
	// test binary dies without tearing down.
	exe, _ := filepath.EvalSymlinks(s.Binary)
	_ = os.WriteFile(s.pidPath, fmt.Appendf(nil, "%d %s\n", cmd.Process.Pid, exe), 0o644)
	done := make(chan struct{})
	s.cmd, s.done, s.waitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(done)
	}()
	return nil
}

func (s *Server) runningLocked() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked()
}

// Pid of the current (or last) process; 0 before the first start.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Exited is closed when the current process exits.
func (s *Server) Exited() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// ExitErr is how the last process ended: nil for exit status 0 (or while it runs), an
// *exec.ExitError otherwise.
func (s *Server) ExitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// LogPath is the server's log file (appended to across restarts, one header per start).
func (s *Server) LogPath() string { return s.logPath }

// LogTail returns the last n lines of the log, for failure messages.
func (s *Server) LogTail(n int) string {
	data, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Kill sends SIGKILL (no graceful shutdown, like a node failure) and waits for the exit.
func (s *Server) Kill() error { return s.signalAndWait(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM, waits up to 30s for a graceful exit, then SIGKILLs.
func (s *Server) Stop() error {
	if err := s.signalAndWait(syscall.SIGTERM, 30*time.Second); err != nil {
		logf("rollout-apiserver did not stop on SIGTERM (%v); killing it", err)
		return s.Kill()
	}
	return nil
}

// Restart stops the process gracefully (if running) and starts it again.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

func (s *Server) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	s.mu.Lock()
	if !s.runningLocked() {
		s.mu.Unlock()
		return nil
	}
	proc, done := s.cmd.Process, s.done
	s.mu.Unlock()
	if err := proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		_ = os.Remove(s.pidPath)
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("rollout-apiserver (pid %d) still running %s after %s", proc.Pid, timeout, sig)
	}
}

// RESTConfig talks to our server directly (not through the aggregator), as the admin user;
// our server trusts the cluster's client CA via kube-system/extension-apiserver-authentication.
func (s *Server) RESTConfig() *rest.Config {
	pki := s.c.Env["PKI_DIR"]
	return &rest.Config{
		Host: s.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   s.CAFile,
			CertFile: filepath.Join(pki, "admin.crt"),
			KeyFile:  filepath.Join(pki, "admin.key"),
		},
		QPS: 100, Burst: 200,
	}
}

// WaitReady polls the server's /readyz until it answers ok; fails early with the log tail if
// the process exits.
func (s *Server) WaitReady(ctx context.Context) error {
	client, err := rest.HTTPClientFor(s.RESTConfig())
	if err != nil {
		return err
	}
	exited := s.Exited()
	var last string
	err = pollUntil(ctx, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			s.mu.Lock()
			werr := s.waitErr
			s.mu.Unlock()
			return false, fmt.Errorf("rollout-apiserver exited (%v); last log lines (%s):\n%s", werr, s.logPath, s.LogTail(30))
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("rollout-apiserver /readyz not ok (last: %s); log %s:\n%s", last, s.logPath, s.LogTail(30))
	}
	return err
}

// WaitAPIServiceAvailable waits until every named APIService (default: ours) has condition
// Available=True.
func (c *Cluster) WaitAPIServiceAvailable(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		names = APIServices
	}
	for _, name := range names {
		var last string
		err := pollUntil(ctx, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
			ok, msg, err := c.APIServiceAvailable(ctx, name)
			last = msg
			if apierrors.IsNotFound(err) {
				last = "not found"
				return false, nil
			}
			return ok, err
		})
		if err != nil {
			return fmt.Errorf("APIService %s not Available: %w (last: %s)", name, err, last)
		}
	}
	return nil
}

// APIServiceAvailable reports the Available condition of an APIService and its message.
func (c *Cluster) APIServiceAvailable(ctx context.Context, name string) (bool, string, error) {
	obj, err := c.Dynamic.Resource(apiServiceGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, "", err
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, ci := range conds {
		cond, _ := ci.(map[string]any)
		if cond["type"] == "Available" {
			msg := fmt.Sprintf("%v: %v", cond["reason"], cond["message"])
			return cond["status"] == "True", msg, nil
		}
	}
	return false, "no Available condition yet", nil
}
