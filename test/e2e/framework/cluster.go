// Package framework runs the end-to-end tests' environment: a real control plane on this
// machine (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with fake
// nodes; started by hack/local-up.sh) and rollout-apiserver as a child process the tests
// can kill and restart.
//
// Use it from a TestMain:
//
//	func TestMain(m *testing.M) { framework.Main(m) }
//
// and in tests: c := framework.Get(); c.Client, c.StartServer(ctx, ...).
//
// Environment:
//
//	E2E_RUN_DIR     run folder to use (relative to the repository root, e.g. _output/local
//	                as used by `make run`). If it holds a live control plane, it is reused; if
//	                not, one is started there. Either way it is left running at the end, for
//	                fast iteration (stop it: LOCAL_RUN_DIR=DIR hack/local-down.sh).
//	                Unset: a fresh temp folder, torn down at the end.
//	E2E_KEEP        1 = keep the temp run folder (logs) even when all tests pass.
//	E2E_SKIP_BUILD  1 = use bin/rollout-apiserver as is instead of building ./cmd/apiserver.
package framework

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const modulePath = "github.com/rollout-apiserver/rollout-apiserver"

// ControlPlaneBinaries are what hack/build-tools.sh (`make tools`) puts in bin/.
var ControlPlaneBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}

// Cluster is a running local control plane.
type Cluster struct {
	RootDir    string // repository root
	RunDir     string // run folder: env, kubeconfigs, pki/, logs/, pids/
	Kubeconfig string // admin kubeconfig (system:masters)
	Kubectl    string // bin/kubectl, same version as the control plane
	Config     *rest.Config
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Env        map[string]string // RUN_DIR/env written by local-up.sh (ports, URLs, paths)

	stopOnTeardown   bool // we started the control plane and nobody asked to keep it
	removeOnTeardown bool // RunDir is our temp folder

	mu      sync.Mutex
	servers []*Server
	// stoppers stop what the tests started beside the servers (Prometheus, exporters).
	stoppers []func() error
	built    bool // BuildServer ran

	teardownOnce sync.Once
	teardownErr  error
}

// RepoRoot finds the repository root: the nearest parent of the working directory (go test
// runs in the package folder) whose go.mod declares our module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// CheckBinaries fails, saying how to fix it, when a control-plane binary is missing.
func CheckBinaries(root string) error {
	var missing []string
	for _, b := range ControlPlaneBinaries {
		if st, err := os.Stat(filepath.Join(root, "bin", b)); err != nil || st.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("control-plane binaries missing in %s: %s -- run `make tools` (hack/build-tools.sh) first",
			filepath.Join(root, "bin"), strings.Join(missing, ", "))
	}
	return nil
}

// Setup starts (or, with E2E_RUN_DIR, reuses) a control plane without our server.
func Setup(ctx context.Context) (*Cluster, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := CheckBinaries(root); err != nil {
		return nil, err
	}
	c := &Cluster{RootDir: root}

	if dir := os.Getenv("E2E_RUN_DIR"); dir != "" {
		// Relative to the repository root, like the scripts' LOCAL_RUN_DIR default
		// (go test runs in the package folder, which nobody has in mind when typing it).
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		c.RunDir = filepath.Clean(dir)
		if err := c.load(); err == nil && c.healthy(ctx) == nil {
			logf("reusing the control plane in %s (E2E_RUN_DIR)", c.RunDir)
			return c, nil
		}
	} else {
		if c.RunDir, err = os.MkdirTemp("", "rollout-e2e-"); err != nil {
			return nil, err
		}
		c.stopOnTeardown = true
		c.removeOnTeardown = os.Getenv("E2E_KEEP") != "1"
	}

	start := time.Now()
	logf("starting the control plane in %s", c.RunDir)
	if _, err := c.script(ctx, os.Stderr, "hack/local-up.sh", "ROLLOUT_SERVER=0"); err != nil {
		return c, fmt.Errorf("hack/local-up.sh: %w (logs in %s/logs)", err, c.RunDir)
	}
	logf("control plane ready in %s", time.Since(start).Round(100*time.Millisecond))
	if err := c.load(); err != nil {
		return c, err
	}
	return c, c.healthy(ctx)
}

// load reads RUN_DIR/env and builds the clients.
func (c *Cluster) load() error {
	env, err := readEnvFile(filepath.Join(c.RunDir, "env"))
	if err != nil {
		return err
	}
	c.Env = env
	c.Kubeconfig = env["KUBECONFIG"]
	c.Kubectl = filepath.Join(c.RootDir, "bin", "kubectl")
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", c.Kubeconfig, err)
	}
	// Tests create and poll a lot; client-go's default 5 QPS would make them slow, not safer.
	cfg.QPS, cfg.Burst = 100, 200
	c.Config = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	c.Dynamic, err = dynamic.NewForConfig(cfg)
	return err
}

// healthy checks the kube-apiserver's /readyz.
func (c *Cluster) healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver /readyz: %w (%s)", err, body)
	}
	return nil
}

// Teardown stops the servers started through StartServer and what StartPrometheus and
// StartExporter started, then the control plane if this
// process started it in a temp folder, and removes that folder unless failed or E2E_KEEP=1.
// It runs once; later calls (say, a signal arriving during the normal teardown) wait for the
// first and return its result.
func (c *Cluster) Teardown(failed bool) error {
	c.teardownOnce.Do(func() { c.teardownErr = c.teardown(failed) })
	return c.teardownErr
}

func (c *Cluster) teardown(failed bool) error {
	var errs []error
	c.mu.Lock()
	servers := c.servers
	c.servers = nil
	c.mu.Unlock()
	for _, s := range servers {
		if err := s.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	stoppers := c.stoppers
	c.stoppers = nil
	c.mu.Unlock()
	for _, stop := range stoppers {
		if err := stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if !c.stopOnTeardown {
		if c.RunDir != "" {
			logf("leaving the control plane in %s running; stop it with: LOCAL_RUN_DIR=%s hack/local-down.sh", c.RunDir, c.RunDir)
		}
		return errors.Join(errs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := c.script(ctx, nil, "hack/local-down.sh"); err != nil {
		errs = append(errs, fmt.Errorf("hack/local-down.sh: %w\n%s", err, out))
	}
	switch {
	case failed || !c.removeOnTeardown:
		logf("logs kept in %s/logs", c.RunDir)
	default:
		if err := os.RemoveAll(c.RunDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// script runs ROOT/name with LOCAL_RUN_DIR set, plus env ("K=V"). Output goes to out if
// given, and is returned.
func (c *Cluster) script(ctx context.Context, out *os.File, name string, env ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.RootDir, name))
	cmd.Dir = c.RootDir
	cmd.Env = append(append(os.Environ(), "LOCAL_RUN_DIR="+c.RunDir), env...)
	var buf bytes.Buffer
	var w io.Writer = &buf
	if out != nil {
		w = io.MultiWriter(&buf, out)
	}
	cmd.Stdout, cmd.Stderr = w, w // one writer: exec then copies both through one goroutine
	// The script's daemons write to their own log files, so nothing keeps these pipes open
	// after it exits; WaitDelay is a guard should that ever change.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	return buf.String(), err
}

// KubectlCmd runs bin/kubectl against the cluster and returns its combined output.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// LogPath is the log file of a control-plane component (etcd, kube-apiserver, ...).
func (c *Cluster) LogPath(component string) string {
	return filepath.Join(c.RunDir, "logs", component+".log")
}

// readEnvFile parses the KEY=VALUE lines the scripts write (no quoting, # comments).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		env[k] = v
	}
	return env, sc.Err()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s e2e: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// pollUntil calls cond every interval until it returns true, an error, or ctx ends.
func pollUntil(ctx context.Context, interval time.Duration, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// onTeardown registers stop to run at Teardown, after the servers are stopped.
func (c *Cluster) onTeardown(stop func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stoppers = append(c.stoppers, stop)
}
