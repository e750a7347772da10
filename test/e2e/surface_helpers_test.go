package e2e

// Helpers of the API-surface tests (surface_*_test.go): what a user sees of rollout.kruise.io
// through the kube-apiserver's aggregation layer, mostly through bin/kubectl.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

const (
	surfaceServerTimeout = 3 * time.Minute
	surfaceWait          = 30 * time.Second
	surfacePoll          = 200 * time.Millisecond
)

// surfaceEnv is one surface test's view of the cluster: the cluster, the running
// rollout-apiserver behind the APIServices, and kubectl as the admin.
type surfaceEnv struct {
	t       *testing.T
	c       *framework.Cluster
	server  *framework.Server
	kubectl kubectlAs
}

// newSurfaceEnv makes sure rollout-apiserver serves the API (framework.SharedServer).
func newSurfaceEnv(t *testing.T) *surfaceEnv {
	t.Helper()
	c := framework.Get()
	ctx, cancel := context.WithTimeout(context.Background(), surfaceServerTimeout)
	defer cancel()
	s, err := c.SharedServer(ctx)
	require.NoError(t, err, "rollout-apiserver must be running and registered")
	return &surfaceEnv{t: t, c: c, server: s, kubectl: kubectlAs{t: t, c: c}}
}

// in returns the env for a subtest: its helpers then fail t, not the parent test.
func (e *surfaceEnv) in(t *testing.T) *surfaceEnv {
	sub := *e
	sub.t, sub.kubectl.t = t, t
	return &sub
}

// namespace creates a namespace for this test, deleted when it ends.
func (e *surfaceEnv) namespace() string {
	e.t.Helper()
	return e.c.NewNamespace(e.t)
}

// eventually polls cond until it holds (framework.Eventually with this file's defaults).
func (e *surfaceEnv) eventually(what string, cond func(ctx context.Context) (bool, string)) {
	e.t.Helper()
	framework.Eventually(e.t, surfaceWait, surfacePoll, what, cond)
}

// rolloutAs reads a Rollout through the aggregator in the given version.
func (e *surfaceEnv) rolloutAs(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), surfaceWait)
	defer cancel()
	ro, err := e.c.Dynamic.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(e.t, err, "get %s %s/%s", gvr.Version, ns, name)
	return ro
}

// expectNoRollout fails unless the Rollout does not exist.
func (e *surfaceEnv) expectNoRollout(ns, name string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), surfaceWait)
	defer cancel()
	_, err := e.c.Dynamic.Resource(rolloutsV1beta1).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	require.Truef(e.t, apierrors.IsNotFound(err), "Rollout %s/%s should not exist; get returned err=%v", ns, name, err)
}

// ---------------------------------------------------------------------------------------
// kubectl, as the admin or as an impersonated user.

// kubectlAs runs bin/kubectl with the cluster's admin kubeconfig; with a user set it adds
// --as=USER (the admin, in system:masters, may impersonate anybody).
type kubectlAs struct {
	t    *testing.T
	c    *framework.Cluster
	user string
}

// kubectlResult is what a kubectl command printed (stdout and stderr together, as a user
// reads them) and its exit code.
type kubectlResult struct {
	cmd      string
	Output   string
	ExitCode int
}

func (r kubectlResult) String() string {
	return fmt.Sprintf("$ %s\n(exit %d)\n%s", r.cmd, r.ExitCode, r.Output)
}

// as returns kubectl impersonating user.
func (k kubectlAs) as(user string) kubectlAs {
	k.user = user
	return k
}

// run runs kubectl with args and returns what happened; it fails the test only when
// kubectl could not be run at all.
func (k kubectlAs) run(args ...string) kubectlResult {
	k.t.Helper()
	return k.runWithStdin("", args...)
}

// runWithStdin is run with stdin (for `-f -`).
func (k kubectlAs) runWithStdin(stdin string, args ...string) kubectlResult {
	k.t.Helper()
	full := []string{"--kubeconfig=" + k.c.Kubeconfig}
	if k.user != "" {
		full = append(full, "--as="+k.user)
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.c.Kubectl, full...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	res := kubectlResult{cmd: "kubectl " + strings.Join(full[1:], " "), Output: out.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		require.NoError(k.t, err, "running %s", res.cmd)
	}
	return res
}

// must runs kubectl and fails the test unless it succeeds; it returns the output.
func (k kubectlAs) must(args ...string) string {
	k.t.Helper()
	res := k.run(args...)
	require.Zero(k.t, res.ExitCode, "kubectl failed:\n%s", res)
	return res.Output
}

// mustApply pipes manifest into `kubectl apply -f - ARGS...` and fails unless it succeeds.
func (k kubectlAs) mustApply(manifest string, args ...string) string {
	k.t.Helper()
	res := k.apply(manifest, args...)
	require.Zero(k.t, res.ExitCode, "kubectl apply failed:\n%s", res)
	return res.Output
}

// apply pipes manifest into `kubectl apply -f - ARGS...`.
func (k kubectlAs) apply(manifest string, args ...string) kubectlResult {
	k.t.Helper()
	return k.runWithStdin(manifest, append([]string{"apply", "-f", "-"}, args...)...)
}

// getJSON runs `kubectl get ARGS... -o json` and decodes the object.
func (k kubectlAs) getJSON(args ...string) map[string]any {
	k.t.Helper()
	out := k.must(append(append([]string{"get"}, args...), "-o", "json")...)
	var obj map[string]any
	require.NoError(k.t, json.Unmarshal([]byte(out), &obj), "kubectl get -o json printed:\n%s", out)
	return obj
}

// expectForbidden fails unless res is kubectl's report of a 403 from the server.
func expectForbidden(t *testing.T, res kubectlResult) {
	t.Helper()
	require.NotZero(t, res.ExitCode, "expected 403 Forbidden, but kubectl succeeded:\n%s", res)
	require.Contains(t, res.Output, "(Forbidden)", "expected 403 Forbidden:\n%s", res)
}

// ---------------------------------------------------------------------------------------
// Rollout manifests.

// canaryRolloutYAML is a v1beta1 Rollout of Deployment workload with three steps routed
// through an nginx Ingress.
func canaryRolloutYAML(ns, name, workload string) string {
	return fmt.Sprintf(`apiVersion: rollout.kruise.io/v1beta1
kind: Rollout
metadata:
  name: %s
  namespace: %s
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  strategy:
    canary:
      trafficRoutings:
      - service: %[3]s
        ingress: {name: %[3]s, classType: nginx}
      steps:
      - {replicas: 1, traffic: 10%%}
      - {replicas: 50%%, traffic: 50%%, pause: {duration: 60}}
      - {replicas: 100%%}
`, name, ns, workload)
}

// ---------------------------------------------------------------------------------------
// Reading kubectl's tables.

// kubectlTable is `kubectl get` output split into cells by the header's column positions
// (kubectl left-aligns every column at its header, and cells such as MESSAGE may hold
// spaces, so splitting on whitespace would not do).
type kubectlTable struct {
	Header []string
	Rows   []map[string]string // column name → trimmed cell
}

func parseKubectlTable(t *testing.T, out string) kubectlTable {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.NotEmpty(t, lines, "no kubectl output")
	header := lines[0]
	var tbl kubectlTable
	var starts []int
	for i := 0; i < len(header); {
		if header[i] == ' ' {
			i++
			continue
		}
		j := i
		for j < len(header) && header[j] != ' ' {
			j++
		}
		starts = append(starts, i)
		tbl.Header = append(tbl.Header, header[i:j])
		i = j
	}
	for _, line := range lines[1:] {
		row := map[string]string{}
		for n, start := range starts {
			end := len(line)
			if n+1 < len(starts) && starts[n+1] < end {
				end = starts[n+1]
			}
			if start < len(line) {
				row[tbl.Header[n]] = strings.TrimSpace(line[start:end])
			}
		}
		tbl.Rows = append(tbl.Rows, row)
	}
	return tbl
}

// row returns the row whose NAME is name.
func (tbl kubectlTable) row(t *testing.T, name string) map[string]string {
	t.Helper()
	for _, r := range tbl.Rows {
		if r["NAME"] == name {
			return r
		}
	}
	require.Failf(t, "row not found", "no row NAME=%s in %v", name, tbl.Rows)
	return nil
}
