package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestSurfaceNamespaceDeletionAndOutage: the cluster's own machinery copes with our API —
// the namespace controller deletes a namespace full of rollouts — and with its absence:
// while rollout-apiserver is stopped, its APIService turns unavailable but the rest of the
// cluster keeps working, and once it is back the stored rollouts are served again.
func TestSurfaceNamespaceDeletionAndOutage(t *testing.T) {
	e := newSurfaceEnv(t)

	t.Run("deleting a namespace deletes its 5 rollouts", func(t *testing.T) {
		e := e.in(t)
		ns := e.namespace()
		var docs []string
		for i := range 5 {
			docs = append(docs, canaryRolloutYAML(ns, fmt.Sprintf("ro-%d", i), fmt.Sprintf("web-%d", i)))
		}
		e.kubectl.mustApply(strings.Join(docs, "---\n"))
		require.Len(t, e.rolloutNames(ns), 5)

		start := time.Now()
		e.kubectl.must("delete", "namespace", ns, "--wait=false")
		framework.Eventually(t, 60*time.Second, 250*time.Millisecond, "namespace "+ns+" to be deleted",
			func(context.Context) (bool, string) {
				// (own timeout: the last state, reported on failure, must not be a deadline error)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				n, err := e.c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return true, ""
				}
				if err != nil {
					return false, err.Error()
				}
				return false, namespaceDeletionState(n) + "; rollouts left: " + strings.Join(e.rolloutNames(ns), ",")
			})
		t.Logf("namespace with 5 rollouts deleted in %s", time.Since(start).Round(10*time.Millisecond))
		assert.Empty(t, e.rolloutNames(ns), "no rollout outlives its namespace")
	})

	t.Run("stopped, only rollouts are unavailable; restarted, they are served again", func(t *testing.T) {
		e := e.in(t)
		ns := e.namespace()
		e.kubectl.mustApply(canaryRolloutYAML(ns, "survivor", "web"))
		e.givenPod(ns, "bystander")

		s := e.server
		t.Cleanup(func() { e.ensureServing(s) }) // later tests need the API, whatever happens here
		start := time.Now()
		stopped := make(chan error, 1)
		var exitedAfter time.Duration
		go func() { // SIGTERM: the listener closes at once, then the process drains and exits
			err := s.Stop()
			exitedAfter = time.Since(start)
			stopped <- err
		}()

		framework.Eventually(t, 90*time.Second, 250*time.Millisecond, "APIService v1beta1.rollout.kruise.io to turn unavailable",
			func(ctx context.Context) (bool, string) {
				ok, msg, err := e.c.APIServiceAvailable(ctx, "v1beta1.rollout.kruise.io")
				if err != nil {
					return false, err.Error()
				}
				return !ok, msg
			})
		t.Logf("APIService unavailable %s after SIGTERM", time.Since(start).Round(10*time.Millisecond))

		res := e.kubectl.run("get", "rollouts", "-n", ns)
		assert.NotZero(t, res.ExitCode, "rollouts can't be served now:\n%s", res)
		assert.Contains(t, res.Output, "ServiceUnavailable", "the aggregator answers 503:\n%s", res)

		// Everything else works: kubectl's discovery tolerates the missing group.
		assert.Contains(t, e.kubectl.must("get", "pods", "-A"), "bystander")
		e.kubectl.must("create", "configmap", "during-outage", "-n", ns, "--from-literal=written=while rollout-apiserver was down")
		cm, err := e.c.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), "during-outage", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "while rollout-apiserver was down", cm.Data["written"])

		require.NoError(t, <-stopped, "stop rollout-apiserver")
		t.Logf("rollout-apiserver exited %s after SIGTERM", exitedAfter.Round(10*time.Millisecond))
		require.False(t, s.Running())

		restart := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), surfaceServerTimeout)
		defer cancel()
		require.NoError(t, s.Start(ctx), "restart rollout-apiserver") // waits for both APIServices
		t.Logf("serving again %s after the restart", time.Since(restart).Round(10*time.Millisecond))
		e.eventually("the stored rollout to be served again", func(context.Context) (bool, string) {
			res := e.kubectl.run("get", "rollout", "survivor", "-n", ns, "-o", "name")
			return res.ExitCode == 0 && strings.TrimSpace(res.Output) == "rollout.rollout.kruise.io/survivor", res.String()
		})
		available, msg, err := e.c.APIServiceAvailable(context.Background(), "v1beta1.rollout.kruise.io")
		require.NoError(t, err)
		assert.True(t, available, msg)
	})
}

// rolloutNames lists the names of the rollouts in ns (through the aggregator).
func (e *surfaceEnv) rolloutNames(ns string) []string {
	e.t.Helper()
	list, err := e.c.Dynamic.Resource(rolloutsV1beta1).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(e.t, err, "list rollouts in %s", ns)
	var names []string
	for _, ro := range list.Items {
		names = append(names, ro.GetName())
	}
	return names
}

// namespaceDeletionState summarises why a namespace is still there: its phase and the
// conditions the namespace controller reports (e.g. content it failed to delete).
func namespaceDeletionState(ns *corev1.Namespace) string {
	parts := []string{"phase " + string(ns.Status.Phase)}
	for _, c := range ns.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			parts = append(parts, fmt.Sprintf("%s: %s", c.Type, c.Message))
		}
	}
	return strings.Join(parts, "; ")
}

// givenPod creates a pod (kwok runs it; its image is never pulled).
func (e *surfaceEnv) givenPod(ns, name string) {
	e.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "fake-image:v1"}}},
	}
	_, err := e.c.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	require.NoError(e.t, err)
}

// ensureServing starts s again if a test left it stopped.
func (e *surfaceEnv) ensureServing(s *framework.Server) {
	if s.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), surfaceServerTimeout)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		e.t.Errorf("restarting rollout-apiserver for the next tests: %v", err)
	}
}
