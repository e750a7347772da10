package e2e

// Helpers of the kubectl plugin scenarios (plugin_test.go): the plugin is built once into a
// temp folder and run as a user would run it, with the cluster's admin kubeconfig (or --as
// another user) in the scenario's namespace.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	pluginOnce sync.Once
	pluginBin  string
	pluginErr  error

	browserToolsOnce sync.Once
	browserToolsErr  error
)

// pluginBinary builds cmd/kubectl-rollouts once per test process.
func pluginBinary(t *testing.T, root string) string {
	t.Helper()
	pluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kubectl-rollouts-e2e-")
		if err != nil {
			pluginErr = err
			return
		}
		pluginBin = filepath.Join(dir, "kubectl-rollouts")
		cmd := exec.Command("go", "build", "-o", pluginBin, "./cmd/kubectl-rollouts")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("go build ./cmd/kubectl-rollouts: %w\n%s", err, out)
		}
	})
	if pluginErr != nil {
		t.Fatalf("plugin: %v", pluginErr)
	}
	return pluginBin
}

// requireBrowserTools makes sure chromium and tmux are installed: hack/install-browser-tools.sh
// installs them as root, and otherwise fails with the command to run. A missing tool fails
// the test; it never skips it.
func requireBrowserTools(t *testing.T, root string) {
	t.Helper()
	browserToolsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "install-browser-tools.sh"))
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			browserToolsErr = fmt.Errorf("hack/install-browser-tools.sh: %w\n%s", err, out)
		}
	})
	if browserToolsErr != nil {
		t.Fatalf("the plugin's browser and terminal tests need chromium and tmux: %v", browserToolsErr)
	}
}

// pluginResult is one run of the plugin.
type pluginResult struct {
	args     []string
	ExitCode int
	Stdout   string
	Stderr   string
}

func (r pluginResult) String() string {
	return fmt.Sprintf("kubectl rollouts %s (exit %d)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.ExitCode, r.Stdout, r.Stderr)
}

// plugin runs `kubectl rollouts ARGS -n NS` as the cluster admin.
func (s *scenario) plugin(args ...string) pluginResult {
	s.t.Helper()
	return s.pluginAs("", args...)
}

// pluginAs runs the plugin impersonating user (the admin kubeconfig may impersonate), or as
// the admin when user is "".
func (s *scenario) pluginAs(user string, args ...string) pluginResult {
	s.t.Helper()
	bin := pluginBinary(s.t, s.env.c.RootDir)
	full := append(append([]string{}, args...), "-n", s.ns)
	if user != "" {
		full = append(full, "--as", user)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.env.c.Kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := pluginResult{args: full, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("running the plugin: %v", err)
	}
	s.logf("kubectl rollouts %s → exit %d", strings.Join(args, " "), res.ExitCode)
	return res
}

// pluginMust runs the plugin and fails the test unless it exits 0; it returns stdout.
func (s *scenario) pluginMust(args ...string) string {
	s.t.Helper()
	res := s.plugin(args...)
	if res.ExitCode != 0 {
		s.t.Fatalf("%s\n%s", res, s.describe())
	}
	return res.Stdout
}

// expectPlugin runs the plugin and checks its exit code and that its output has every want.
func (s *scenario) expectPlugin(code int, want []string, args ...string) pluginResult {
	s.t.Helper()
	res := s.plugin(args...)
	s.checkResult(res, code, want)
	return res
}

// expectPluginEventually is expectPlugin for output built from what the
// cluster records after the fact (Events are written asynchronously): it runs
// the plugin again until the output has every want, for up to 30 s.
func (s *scenario) expectPluginEventually(code int, want []string, args ...string) pluginResult {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := s.plugin(args...)
		complete := res.ExitCode == code
		for _, w := range want {
			complete = complete && strings.Contains(res.Stdout+res.Stderr, w)
		}
		if complete || time.Now().After(deadline) {
			s.checkResult(res, code, want)
			return res
		}
		time.Sleep(time.Second)
	}
}

func (s *scenario) checkResult(res pluginResult, code int, want []string) {
	s.t.Helper()
	if res.ExitCode != code {
		s.t.Errorf("expected exit %d from %s", code, res)
	}
	for _, w := range want {
		if !strings.Contains(res.Stdout+res.Stderr, w) {
			s.t.Errorf("expected %q in the output of %s", w, res)
		}
	}
}

// outputDir is _output/ at the repository root, where screenshots and captures go.
func (s *scenario) outputDir() string {
	s.t.Helper()
	dir := filepath.Join(s.env.c.RootDir, "_output", "plugin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatalf("mkdir %s: %v", dir, err)
	}
	return dir
}

// bindRole binds the ClusterRole to user in the scenario's namespace (roles from
// artifacts/deploy/30-rbac-users.yaml, applied once) and waits until the authorizer uses it.
func (s *scenario) bindRole(user, role string) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.env.c.KubectlCmd(ctx, "apply", "-f", filepath.Join(s.env.c.RootDir, "artifacts", "deploy", "30-rbac-users.yaml")); err != nil {
		s.t.Fatalf("apply the user roles: %v", err)
	}
	if _, err := s.env.c.KubectlCmd(ctx, "create", "rolebinding", user, "-n", s.ns, "--clusterrole="+role, "--user="+user); err != nil {
		s.t.Fatalf("bind %s to %s: %v", user, role, err)
	}
	s.eventually(waitTimeout, fmt.Sprintf("%s's binding to %s to take effect", user, role), func(ctx context.Context) (bool, string) {
		out, err := s.env.c.KubectlCmd(ctx, "auth", "can-i", "get", "rollouts.rollout.kruise.io", "-n", s.ns, "--as", user)
		return err == nil && strings.TrimSpace(out) == "yes", out
	})
	s.logf("%s bound to %s", user, role)
}
