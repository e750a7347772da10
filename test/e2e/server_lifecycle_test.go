package e2e

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

var (
	rolloutsV1beta1  = schema.GroupVersionResource{Group: "rollout.kruise.io", Version: "v1beta1", Resource: "rollouts"}
	rolloutsV1alpha1 = schema.GroupVersionResource{Group: "rollout.kruise.io", Version: "v1alpha1", Resource: "rollouts"}
)

// TestServerSurvivesKill: rollout-apiserver registered through the aggregator serves
// rollouts; after kill -9 and a restart, on the same port and data dir, the APIServices
// come back Available and the stored rollout is still there, in both versions.
func TestServerSurvivesKill(t *testing.T) {
	c := framework.Get()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	s, err := c.StartServer(ctx, framework.ServerOptions{})
	if err != nil {
		t.Fatalf("start rollout-apiserver: %v", err)
	}
	defer s.Stop()
	ns := c.NewNamespace(t)

	ro := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rollout.kruise.io/v1beta1",
		"kind":       "Rollout",
		"metadata":   map[string]any{"name": "survivor", "namespace": ns},
		"spec": map[string]any{
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
			"strategy": map[string]any{"canary": map[string]any{
				"steps": []any{map[string]any{"replicas": "50%"}},
			}},
		},
	}}
	// Through the aggregator (kube-apiserver proxies to us): this is what kubectl does.
	if _, err := c.Dynamic.Resource(rolloutsV1beta1).Namespace(ns).Create(ctx, ro, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create rollout: %v", err)
	}

	pid := s.Pid()
	if err := s.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	if s.Running() {
		t.Fatalf("pid %d still running after SIGKILL", pid)
	}
	start := time.Now()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("restart after kill -9: %v", err)
	}
	t.Logf("pid %d killed; pid %d serving again after %s", pid, s.Pid(), time.Since(start).Round(10*time.Millisecond))

	for _, gvr := range []schema.GroupVersionResource{rolloutsV1beta1, rolloutsV1alpha1} {
		// The aggregator may need a moment to notice the new process behind the same port.
		framework.Eventually(t, 30*time.Second, 200*time.Millisecond, "rollout readable as "+gvr.Version,
			func(ctx context.Context) (bool, string) {
				_, err := c.Dynamic.Resource(gvr).Namespace(ns).Get(ctx, "survivor", metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				return true, ""
			})
	}
}
