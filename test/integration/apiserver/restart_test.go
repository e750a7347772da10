package apiserver

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/integration/framework"
)

// Rollouts live in etcd, not in the server: 50 Rollouts created, the server
// (and its embedded etcd) stopped and started again on the same data
// directory, and every Rollout is back with the same resourceVersion, spec
// and status. The restarted server keeps enforcing one Rollout per workload.
func TestRolloutsSurviveARestart(t *testing.T) {
	ctx := testContext(t)
	const ns, count = "restart", 50

	first := framework.StartServer(t, "")
	client := first.Client.RolloutV1beta1().Rollouts(ns)
	stored := make(map[string]*v1beta1.Rollout, count)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for w := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += 5 {
				name := fmt.Sprintf("web-%02d", i)
				r, err := client.Create(ctx, newRollout(name, name), metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				stored[name] = r
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Some of them are mid-release: status must survive too.
	withStatus, err := client.Get(ctx, "web-07", metav1.GetOptions{})
	require.NoError(t, err)
	withStatus.Status = atStep(2, v1beta1.CanaryStepStatePaused)
	withStatus, err = client.UpdateStatus(ctx, withStatus, metav1.UpdateOptions{})
	require.NoError(t, err)
	stored["web-07"] = withStatus

	first.Stop()

	second := framework.StartServer(t, first.DataDir)
	client = second.Client.RolloutV1beta1().Rollouts(ns)
	list, err := client.List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, count)
	for _, got := range list.Items {
		want, ok := stored[got.Name]
		require.True(t, ok, "unexpected Rollout %s", got.Name)
		assert.Equal(t, want.ResourceVersion, got.ResourceVersion, "%s: resourceVersion", got.Name)
		assert.Equal(t, want.UID, got.UID, "%s: uid", got.Name)
		assert.Equal(t, want.Generation, got.Generation, "%s: generation", got.Name)
		assert.Equal(t, want.Spec, got.Spec, "%s: spec", got.Name)
		assert.Equal(t, want.Status, got.Status, "%s: status", got.Name)
	}
	one, err := client.Get(ctx, "web-07", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, stored["web-07"], one)

	// The restarted server still knows which workloads are taken, and writes on.
	_, err = client.Create(ctx, newRollout("web-07-again", "web-07"), metav1.CreateOptions{})
	require.Error(t, err, "the workload already has a Rollout")
	added, err := client.Create(ctx, newRollout("new", "new"), metav1.CreateOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, stored["web-07"].ResourceVersion, added.ResourceVersion)
}
