package daemonset

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

func TestDeletesJustEnoughOldPods(t *testing.T) {
	ctx := context.Background()
	ds := fakecluster.NewDaemonSet("agent", "v1", "2")
	ro := fakecluster.NewRollout("ro", v1beta1.KindDaemonSet, "agent")
	c := fakecluster.New(t, ds, ro)
	c.Nodes = []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	c.Settle()
	c.SetImage(v1beta1.KindDaemonSet, "agent", "v2", true)
	assert.Equal(t, appsv1.OnDeleteDaemonSetStrategyType, c.DaemonSet("agent").Spec.UpdateStrategy.Type)
	c.Settle()

	r := New(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	require.Equal(t, int32(6), info.Replicas)
	require.Equal(t, int32(0), info.Canary.Replicas, "OnDelete: nothing moves by itself")
	canary := info.CanaryRevision

	// A batch of 3 with maxUnavailable 2: two pods go, then (once their
	// replacements are ready) one more.
	ready, err := r.Upgrade(ctx, ro, info, 3)
	require.NoError(t, err)
	assert.False(t, ready)
	c.Refresh()
	pods := c.Pods(c.DaemonSet("agent").UID, appsv1.ControllerRevisionHashLabelKey)
	assert.Equal(t, int32(4), pods[info.StableRevision], "two pods deleted, maxUnavailable 2")

	c.Settle()
	for range 5 {
		info, err = r.Observe(ctx, ro)
		require.NoError(t, err)
		ready, err = r.Upgrade(ctx, ro, info, 3)
		require.NoError(t, err)
		if ready {
			break
		}
		c.Settle()
	}
	assert.True(t, ready)
	pods = c.Pods(c.DaemonSet("agent").UID, appsv1.ControllerRevisionHashLabelKey)
	assert.Equal(t, int32(3), pods[canary], "exactly the batch moved")
	assert.Equal(t, int32(3), pods[info.StableRevision])

	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	done, err := r.Release(ctx, ro, info)
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, ds.Spec.UpdateStrategy, c.DaemonSet("agent").Spec.UpdateStrategy)
	assert.False(t, workload.IsHeld(c.DaemonSet("agent")))
}

func TestExpectationsStopDoubleDeletes(t *testing.T) {
	ctx := context.Background()
	ro := fakecluster.NewRollout("ro", v1beta1.KindDaemonSet, "agent")
	c := fakecluster.New(t, fakecluster.NewDaemonSet("agent", "v1", "1"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDaemonSet, "agent", "v2", true)
	c.Settle()
	r := New(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	_, err = r.Upgrade(ctx, ro, info, 2)
	require.NoError(t, err)
	// No Refresh: the cache still shows the pod that was deleted.
	ready, err := r.Upgrade(ctx, ro, info, 2)
	require.NoError(t, err)
	assert.False(t, ready)
	c.Refresh()
	pods := c.Pods(c.DaemonSet("agent").UID, appsv1.ControllerRevisionHashLabelKey)
	assert.Equal(t, int32(3), pods[info.StableRevision], "one deletion, not two")
}

func TestUnreadyNewPodsHoldTheBatch(t *testing.T) {
	ctx := context.Background()
	ro := fakecluster.NewRollout("ro", v1beta1.KindDaemonSet, "agent")
	c := fakecluster.New(t, fakecluster.NewDaemonSet("agent", "v1", "1"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDaemonSet, "agent", "v2", true)
	c.Settle()
	r := New(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	c.Unready[info.CanaryRevision] = 10
	for range 5 {
		info, err = r.Observe(ctx, ro)
		require.NoError(t, err)
		ready, err := r.Upgrade(ctx, ro, info, 3)
		require.NoError(t, err)
		require.False(t, ready)
		c.Settle()
	}
	pods := c.Pods(c.DaemonSet("agent").UID, appsv1.ControllerRevisionHashLabelKey)
	assert.Equal(t, int32(1), pods[info.CanaryRevision], "an unready new pod uses up maxUnavailable, so no further pod goes")
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	ro := fakecluster.NewRollout("ro", v1beta1.KindDaemonSet, "agent")
	c := fakecluster.New(t, fakecluster.NewDaemonSet("agent", "v1", "1"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDaemonSet, "agent", "v2", true)
	c.Settle()
	r := New(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	ro.Status.Phase = v1beta1.RolloutPhaseProgressing
	ro.Status.CanaryStatus = &v1beta1.CanaryStatus{CommonStatus: v1beta1.CommonStatus{StableRevision: info.StableRevision}}
	done, err := r.Rollback(ctx, ro, info)
	require.NoError(t, err)
	assert.False(t, done)
	c.Refresh()
	assert.Equal(t, "v1", c.DaemonSet("agent").Spec.Template.Spec.Containers[0].Image)
	c.Settle()
	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	assert.Equal(t, info.StableRevision, info.CanaryRevision, "the stable ControllerRevision is the newest again")
	done, err = r.Rollback(ctx, ro, info)
	require.NoError(t, err)
	assert.True(t, done)
}

// A native DaemonSet recreates deleted pods from its current template only, so
// it cannot be held on the stable revision with the new template: Revert says
// so without touching anything, and the caller rewrites the template instead.
func TestRevertIsUnsupported(t *testing.T) {
	ctx := context.Background()
	ro := fakecluster.NewRollout("ro", v1beta1.KindDaemonSet, "agent")
	c := fakecluster.New(t, fakecluster.NewDaemonSet("agent", "v1", "1"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDaemonSet, "agent", "v2", true)
	c.Settle()
	r := New(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	before := c.DaemonSet("agent")
	done, err := r.Revert(ctx, ro, info)
	assert.False(t, done)
	require.ErrorIs(t, err, workload.ErrRevertUnsupported)
	assert.Equal(t, before, c.DaemonSet("agent"), "nothing changed")
	assert.Empty(t, c.Events())
}
