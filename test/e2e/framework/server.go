package framework

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	Process
	c       *Cluster
	URL     string // https://127.0.0.1:PORT
	CAFile  string // CA of the serving cert (the APIServices' caBundle)
	timeout time.Duration

	// HostKubeconfig is how the server reaches the host cluster (--kubeconfig and the
	// delegated authn/authz kubeconfigs): by default a token of its ServiceAccount,
	// bound to the shipped RBAC (hack/local-register.sh, ROLLOUT_HOST_IDENTITY).
	HostKubeconfig string
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
		Process: Process{
			Binary:  renv["ROLLOUT_BINARY"],
			Args:    strings.Fields(string(args)),
			logPath: renv["ROLLOUT_LOG"],
			pidPath: renv["ROLLOUT_PID_FILE"],
		},
		c:       c,
		URL:     renv["ROLLOUT_URL"],
		CAFile:  renv["ROLLOUT_CA"],
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
