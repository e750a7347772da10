package deployment

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// abortedAt records in ro what an aborted release records: the stable revision.
func abortedAt(ro *v1beta1.Rollout, info *workload.Info) {
	ro.Status.Phase = v1beta1.RolloutPhaseAborted
	ro.Status.CanaryStatus = &v1beta1.CanaryStatus{
		CommonStatus:   v1beta1.CommonStatus{StableRevision: info.StableRevision},
		CanaryRevision: info.CanaryRevision,
	}
}

// revertUntilDone runs Revert and the simulated controllers until Revert
// reports done, checking the surge and availability bounds after every pass:
// available pods never drop below replicas - maxUnavailable, or below what was
// available when the revert began if broken canary pods made it less.
func revertUntilDone(t *testing.T, c *fakecluster.Cluster, r workload.Releaser, ro *v1beta1.Rollout, surge, unavailable int32) *workload.Info {
	t.Helper()
	ctx := context.Background()
	availableNow := func() int32 {
		var n int32
		for _, rs := range c.ReplicaSets("web") {
			n += min(*rs.Spec.Replicas, rs.Status.AvailableReplicas)
		}
		return n
	}
	floor := availableNow()
	for range 30 {
		info, err := r.Observe(ctx, ro)
		require.NoError(t, err)
		done, err := r.Revert(ctx, ro, info)
		require.NoError(t, err)
		if done {
			return info
		}
		var total int32
		for _, rs := range c.ReplicaSets("web") {
			total += *rs.Spec.Replicas
		}
		assert.LessOrEqual(t, total, info.Replicas+surge, "never more than replicas + maxSurge pods")
		assert.GreaterOrEqual(t, availableNow(), min(floor, info.Replicas-unavailable), "never fewer available than replicas - maxUnavailable")
		c.Settle()
	}
	t.Fatal("the revert never finished")
	return nil
}

func TestInPlaceRevertKeepsTemplateAndHold(t *testing.T) {
	for _, tc := range []struct {
		name           string
		maxSurge       string
		maxUnavail     string
		surge, unavail int32
		unreadyCanary  int32
	}{
		{name: "surge and unavailability", maxSurge: "25%", maxUnavail: "25%", surge: 3, unavail: 2},
		{name: "one surge pod, no unavailability", maxSurge: "1", maxUnavail: "0", surge: 1, unavail: 0},
		{name: "no unavailability, broken canary pods", maxSurge: "2", maxUnavail: "0", surge: 2, unavail: 0, unreadyCanary: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ro := newRollout(false)
			c := fakecluster.New(t, fakecluster.NewDeployment("web", "v1", 10, tc.maxSurge, tc.maxUnavail), ro)
			c.Settle()
			c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
			r := NewInPlace(c.Deps)
			settleUntil(t, c, r, ro, 4, tc.surge, tc.unavail)
			info, err := r.Observe(ctx, ro)
			require.NoError(t, err)
			stable, canary := info.StableRevision, info.CanaryRevision
			c.Unready[canary] = tc.unreadyCanary
			c.Settle()
			abortedAt(ro, info)

			info = revertUntilDone(t, c, r, ro, tc.surge, tc.unavail)
			rss := c.ReplicaSets("web")
			assert.Equal(t, int32(10), *rss[stable].Spec.Replicas, "the stable revision has every replica again")
			assert.Equal(t, int32(0), *rss[canary].Spec.Replicas)
			assert.Equal(t, int32(0), rss[canary].Status.Replicas, "no pod of the aborted revision is left")
			d := c.Deployment("web")
			assert.Equal(t, "v2", d.Spec.Template.Spec.Containers[0].Image, "the template stays as the user wrote it")
			assert.True(t, workload.IsHeld(d) && d.Spec.Paused, "the workload stays held")
			assert.Equal(t, stable, info.StableRevision, "the recorded stable revision is kept while aborted")
			assert.Equal(t, canary, info.CanaryRevision)

			// Held and reverted, nothing moves any more: the Deployment
			// controller leaves a paused Deployment's single active ReplicaSet.
			sizes := c.ReplicaSetSizes()
			c.Settle()
			done, err := r.Revert(ctx, ro, info)
			require.NoError(t, err)
			assert.True(t, done)
			assert.Equal(t, sizes, c.ReplicaSetSizes())
		})
	}
}

func TestInPlaceRevertWithoutStableReplicaSet(t *testing.T) {
	ctx := context.Background()
	ro := newRollout(false)
	c := fakecluster.New(t, fakecluster.NewDeployment("web", "v1", 2, "1", "0"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	r := NewInPlace(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	abortedAt(ro, info)
	ro.Status.CanaryStatus.StableRevision = "gone"
	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	_, err = r.Revert(ctx, ro, info)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the stable revision gone has no ReplicaSet any more")
}

func TestCanaryRevertRemovesTheCanaryDeployment(t *testing.T) {
	ctx := context.Background()
	ro := newRollout(true)
	c := fakecluster.New(t, fakecluster.NewDeployment("web", "v1", 4, "25%", "25%"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	r := NewCanary(c.Deps)
	for range 10 {
		info, err := r.Observe(ctx, ro)
		require.NoError(t, err)
		ready, err := r.Upgrade(ctx, ro, info, 2)
		require.NoError(t, err)
		if ready {
			break
		}
		c.Settle()
	}
	require.Equal(t, int32(2), *c.Deployment(CanaryName("web")).Spec.Replicas)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	abortedAt(ro, info)

	var done bool
	for range 5 {
		info, err := r.Observe(ctx, ro)
		require.NoError(t, err)
		done, err = r.Revert(ctx, ro, info)
		require.NoError(t, err)
		if done {
			break
		}
		c.Settle()
	}
	require.True(t, done)
	_, err = c.Kube.AppsV1().Deployments(fakecluster.Namespace).Get(ctx, CanaryName("web"), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the canary Deployment is gone")
	d := c.Deployment("web")
	assert.Equal(t, "v2", d.Spec.Template.Spec.Containers[0].Image, "the template stays as the user wrote it")
	assert.True(t, workload.IsHeld(d))
	assert.Equal(t, int32(4), *c.ReplicaSets("web")[stableHash(t, c)].Spec.Replicas)

	// Retry: the same revision is released again through a new canary Deployment.
	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	_, err = r.Upgrade(ctx, ro, info, 1)
	require.NoError(t, err)
	assert.Equal(t, int32(1), *c.Deployment(CanaryName("web")).Spec.Replicas)
}
