package statefulset

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

func upgradeUntilReady(t *testing.T, c *fakecluster.Cluster, r *Releaser, ro *v1beta1.Rollout, desired int32) *workload.Info {
	t.Helper()
	ctx := context.Background()
	for range 10 {
		info, err := r.Observe(ctx, ro)
		require.NoError(t, err)
		ready, err := r.Upgrade(ctx, ro, info, desired)
		require.NoError(t, err)
		if ready {
			return info
		}
		c.Settle()
	}
	t.Fatalf("batch of %d never became ready", desired)
	return nil
}

func TestPartitionPerStep(t *testing.T) {
	ctx := context.Background()
	s := fakecluster.NewStatefulSet("db", "v1", 5)
	two := int32(2)
	s.Spec.UpdateStrategy.RollingUpdate.Partition = &two // the user's own partition, restored at the end
	ro := fakecluster.NewRollout("ro", v1beta1.KindStatefulSet, "db")
	c := fakecluster.New(t, s, ro)
	c.Settle()
	c.SetImage(v1beta1.KindStatefulSet, "db", "v2", true)
	assert.Equal(t, int32(5), workload.HeldPartition(c.StatefulSet("db")), "the hold sets partition = replicas")
	c.Settle()

	r := New(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	require.True(t, info.Consistent)
	stable, canary := info.StableRevision, info.CanaryRevision
	require.NotEqual(t, stable, canary)

	for _, desired := range []int32{1, 3, 5} {
		info := upgradeUntilReady(t, c, r, ro, desired)
		assert.Equal(t, 5-desired, workload.HeldPartition(c.StatefulSet("db")))
		assert.Equal(t, desired, info.Canary.Ready)
		pods := c.Pods(c.StatefulSet("db").UID, appsv1.ControllerRevisionHashLabelKey)
		assert.Equal(t, desired, pods[canary])
		assert.Equal(t, 5-desired, pods[stable])
	}

	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	done, err := r.Release(ctx, ro, info)
	require.NoError(t, err)
	assert.True(t, done)
	got := c.StatefulSet("db")
	assert.Equal(t, s.Spec.UpdateStrategy, got.Spec.UpdateStrategy, "the original partition comes back")
	assert.False(t, workload.IsHeld(got))
}

func TestHighestOrdinalsFirstAndTolerance(t *testing.T) {
	ctx := context.Background()
	ro := fakecluster.NewRollout("ro", v1beta1.KindStatefulSet, "db")
	ft := intstr.FromString("50%")
	ro.Spec.Strategy.Canary.FailureThreshold = &ft
	c := fakecluster.New(t, fakecluster.NewStatefulSet("db", "v1", 4), ro)
	c.Settle()
	c.SetImage(v1beta1.KindStatefulSet, "db", "v2", true)
	c.Settle()
	r := New(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	c.Unready[info.CanaryRevision] = 1

	info = upgradeUntilReady(t, c, r, ro, 2)
	assert.Equal(t, int32(1), info.Canary.Ready, "one of two new pods unready is within 50%")
	pods := c.Pods(c.StatefulSet("db").UID, appsv1.ControllerRevisionHashLabelKey)
	assert.Equal(t, int32(2), pods[info.CanaryRevision])
	for _, name := range []string{"db-2", "db-3"} {
		pod, err := c.Deps.Pods.Pods(fakecluster.Namespace).Get(name)
		require.NoError(t, err)
		assert.Equal(t, info.CanaryRevision, pod.Labels[appsv1.ControllerRevisionHashLabelKey], "%s is updated first", name)
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	ro := fakecluster.NewRollout("ro", v1beta1.KindStatefulSet, "db")
	c := fakecluster.New(t, fakecluster.NewStatefulSet("db", "v1", 3), ro)
	c.Settle()
	c.SetImage(v1beta1.KindStatefulSet, "db", "v2", true)
	c.Settle()
	r := New(c.Deps)
	info := upgradeUntilReady(t, c, r, ro, 1)
	ro.Status.Phase = v1beta1.RolloutPhaseProgressing
	ro.Status.CanaryStatus = &v1beta1.CanaryStatus{CommonStatus: v1beta1.CommonStatus{StableRevision: info.StableRevision}}

	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	done, err := r.Rollback(ctx, ro, info)
	require.NoError(t, err)
	assert.False(t, done)
	c.Refresh()
	assert.Equal(t, "v1", c.StatefulSet("db").Spec.Template.Spec.Containers[0].Image, "the stable revision's template is back")
	c.Settle()
	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	assert.Equal(t, info.StableRevision, info.CanaryRevision)
	done, err = r.Rollback(ctx, ro, info)
	require.NoError(t, err)
	assert.True(t, done)
}
