package deployment

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

func TestPlanScale(t *testing.T) {
	tests := []struct {
		name                           string
		replicas, surge, unavail, want int32
		current                        scaleState
		olds                           []scaleState
		steps                          []scaleStep
	}{
		{
			name:     "first batch grows into the surge and shrinks within availability",
			replicas: 10, surge: 3, unavail: 2, want: 1,
			current: scaleState{name: "new"},
			olds:    []scaleState{{name: "v1", spec: 10, available: 10, stable: true}},
			steps:   []scaleStep{{"new", 1}, {"v1", 9}},
		},
		{
			name:     "no surge: an old pod goes first; the new one comes once it is gone",
			replicas: 10, surge: 0, unavail: 1, want: 2,
			current: scaleState{name: "new"},
			olds:    []scaleState{{name: "v1", spec: 10, available: 10, stable: true}},
			steps:   []scaleStep{{"v1", 9}},
		},
		{
			name:     "unavailable old pods go before available ones",
			replicas: 10, surge: 0, unavail: 2, want: 3,
			current: scaleState{name: "new"},
			olds:    []scaleState{{name: "v1", spec: 10, available: 7, stable: true}},
			steps:   []scaleStep{{"v1", 8}},
		},
		{
			name:     "a batch in place needs nothing",
			replicas: 10, surge: 3, unavail: 2, want: 3,
			current: scaleState{name: "new", spec: 3, available: 3},
			olds:    []scaleState{{name: "v1", spec: 7, available: 7, stable: true}},
		},
		{
			name:     "an intermediate revision shrinks before the stable one",
			replicas: 10, surge: 0, unavail: 2, want: 2,
			current: scaleState{name: "v3"},
			olds: []scaleState{
				{name: "v1", spec: 6, available: 6, stable: true},
				{name: "v2", spec: 4, available: 4},
			},
			steps: []scaleStep{{"v2", 2}},
		},
		{
			name:     "a smaller batch shrinks the new revision and grows the stable one",
			replicas: 10, surge: 2, unavail: 2, want: 3,
			current: scaleState{name: "new", spec: 5, available: 5},
			olds:    []scaleState{{name: "v1", spec: 5, available: 5, stable: true}},
			steps:   []scaleStep{{"v1", 7}, {"new", 3}},
		},
		{
			name:     "the last batch",
			replicas: 10, surge: 3, unavail: 2, want: 10,
			current: scaleState{name: "new", spec: 8, available: 8},
			olds:    []scaleState{{name: "v1", spec: 2, available: 2, stable: true}},
			steps:   []scaleStep{{"new", 10}, {"v1", 0}},
		},
		{
			name:     "room a shrink makes is used only once the old pods are gone",
			replicas: 10, surge: 3, unavail: 2, want: 10,
			current: scaleState{name: "new", spec: 5, pods: 5, available: 5},
			olds:    []scaleState{{name: "v1", spec: 5, pods: 5, available: 5, stable: true}},
			// Growing to 10 now would add pods while v1's 5 still run: 15 > 13.
			steps: []scaleStep{{"new", 8}, {"v1", 3}},
		},
		{
			name:     "the last old pod stays until the new ReplicaSet is complete",
			replicas: 10, surge: 3, unavail: 2, want: 10,
			current: scaleState{name: "new", spec: 8, available: 8},
			olds:    []scaleState{{name: "v1", spec: 2, pods: 5, available: 2, stable: true}},
			steps:   []scaleStep{{"v1", 1}},
		},
		{
			name:     "unready new pods stop old pods from going",
			replicas: 4, surge: 1, unavail: 0, want: 2,
			current: scaleState{name: "new", spec: 1, available: 0},
			olds:    []scaleState{{name: "v1", spec: 4, available: 4, stable: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Unless a case says otherwise, every ReplicaSet has the pods it should.
			withPods := func(s scaleState) scaleState {
				if s.pods == 0 {
					s.pods = s.spec
				}
				return s
			}
			current, olds := withPods(tt.current), make([]scaleState, len(tt.olds))
			for i, o := range tt.olds {
				olds[i] = withPods(o)
			}
			got := planScale(tt.replicas, tt.surge, tt.unavail, tt.want, current, olds)
			assert.Equal(t, tt.steps, got)
			// The bounds hold after every single resize.
			specs := map[string]int32{tt.current.name: tt.current.spec}
			avail := map[string]int32{tt.current.name: tt.current.available}
			for _, o := range tt.olds {
				specs[o.name], avail[o.name] = o.spec, o.available
			}
			for _, s := range got {
				specs[s.name] = s.to
				var total, available int32
				for n, spec := range specs {
					total += spec
					available += min(spec, avail[n])
				}
				assert.LessOrEqual(t, total, tt.replicas+tt.surge, "pods after %v", s)
				assert.GreaterOrEqual(t, available, min(tt.replicas-tt.unavail, sumAvail(tt.current, tt.olds)), "available pods after %v", s)
			}
		})
	}
}

func sumAvail(current scaleState, olds []scaleState) int32 {
	n := min(current.available, current.spec)
	for _, o := range olds {
		n += min(o.available, o.spec)
	}
	return n
}

func newRollout(extra bool, steps ...v1beta1.CanaryStep) *v1beta1.Rollout {
	ro := fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web", steps...)
	ro.Spec.Strategy.Canary.EnableExtraWorkloadForCanary = extra
	return ro
}

// settleUntil upgrades to desired until ready, checking the pod bounds after
// every write (before the simulated controllers react).
func settleUntil(t *testing.T, c *fakecluster.Cluster, r workload.Releaser, ro *v1beta1.Rollout, desired int32, surge, unavailable int32) {
	t.Helper()
	ctx := context.Background()
	for range 30 {
		info, err := r.Observe(ctx, ro)
		require.NoError(t, err)
		ready, err := r.Upgrade(ctx, ro, info, desired)
		require.NoError(t, err)
		if ready {
			return
		}
		var total, available int32
		for _, rs := range c.ReplicaSets("web") {
			total += *rs.Spec.Replicas
			available += min(*rs.Spec.Replicas, rs.Status.AvailableReplicas)
		}
		assert.LessOrEqual(t, total, info.Replicas+surge, "never more than replicas + maxSurge pods")
		assert.GreaterOrEqual(t, available, info.Replicas-unavailable, "never fewer available than replicas - maxUnavailable")
		c.Settle()
	}
	t.Fatalf("batch of %d never became ready", desired)
}

func TestInPlaceBatches(t *testing.T) {
	ctx := context.Background()
	d := fakecluster.NewDeployment("web", "v1", 10, "25%", "25%")
	ro := newRollout(false)
	c := fakecluster.New(t, d, ro)
	c.Settle()
	stable := c.ReplicaSets("web")
	require.Len(t, stable, 1)

	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	c.Settle() // a paused Deployment creates no ReplicaSet for v2
	require.Len(t, c.ReplicaSets("web"), 1)

	r := NewInPlace(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	assert.True(t, info.Held)
	assert.NotEqual(t, info.StableRevision, info.CanaryRevision)
	canary, stableRev := info.CanaryRevision, info.StableRevision

	for _, desired := range []int32{1, 4, 10} {
		settleUntil(t, c, r, ro, desired, 3, 2)
		rss := c.ReplicaSets("web")
		require.Contains(t, rss, canary)
		assert.Equal(t, desired, *rss[canary].Spec.Replicas)
		assert.Equal(t, 10-desired, *rss[stableRev].Spec.Replicas)
	}
	created := c.ReplicaSets("web")[canary]
	assert.Equal(t, "web-"+canary, created.Name, "named as the Deployment controller names it")
	assert.Equal(t, "10", created.Annotations[desiredReplicasAnnotation])
	assert.Equal(t, "2", created.Annotations[revisionAnnotation])

	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	done, err := r.Release(ctx, ro, info)
	require.NoError(t, err)
	assert.True(t, done)
	got := c.Deployment("web")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy, "the strategy comes back exactly")
	assert.False(t, workload.IsHeld(got))
	c.Refresh()
	c.Settle()
	assert.Len(t, c.ReplicaSets("web"), 2, "the Deployment controller adopts our ReplicaSet as its own")
}

func TestInPlaceFailureThreshold(t *testing.T) {
	ctx := context.Background()
	ro := newRollout(false)
	one := intstr.FromInt32(1)
	ro.Spec.Strategy.Canary.FailureThreshold = &one
	c := fakecluster.New(t, fakecluster.NewDeployment("web", "v1", 4, "2", "0"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	r := NewInPlace(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	c.Unready[info.CanaryRevision] = 1

	var ready bool
	for range 10 {
		info, err = r.Observe(ctx, ro)
		require.NoError(t, err)
		ready, err = r.Upgrade(ctx, ro, info, 2)
		require.NoError(t, err)
		if ready {
			break
		}
		c.Settle()
	}
	assert.True(t, ready, "one unready new pod is tolerated")
	assert.Equal(t, int32(2), *c.ReplicaSets("web")[info.CanaryRevision].Spec.Replicas)

	ro.Spec.Strategy.Canary.FailureThreshold = nil
	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	ready, err = r.Upgrade(ctx, ro, info, 2)
	require.NoError(t, err)
	assert.False(t, ready, "without a threshold an unready pod holds the batch")
}

func TestInPlaceRollbackAndHold(t *testing.T) {
	ctx := context.Background()
	ro := newRollout(false)
	c := fakecluster.New(t, fakecluster.NewDeployment("web", "v1", 4, "1", "1"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	r := NewInPlace(c.Deps)
	settleUntil(t, c, r, ro, 2, 1, 1)

	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	// Rollback happens during a release, which records the stable revision.
	ro.Status.Phase = v1beta1.RolloutPhaseProgressing
	ro.Status.CanaryStatus = &v1beta1.CanaryStatus{CommonStatus: v1beta1.CommonStatus{StableRevision: info.StableRevision}}
	done, err := r.Rollback(ctx, ro, info)
	require.NoError(t, err)
	assert.False(t, done, "the template was written; done once observed")
	c.Refresh()
	assert.Equal(t, "v1", c.Deployment("web").Spec.Template.Spec.Containers[0].Image)
	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	assert.Equal(t, info.StableRevision, info.CanaryRevision)
	done, err = r.Rollback(ctx, ro, info)
	require.NoError(t, err)
	assert.True(t, done)

	// Someone removed the hold: Hold puts it back.
	d := c.Deployment("web")
	workload.ReleaseDeployment(d)
	_, err = c.Kube.AppsV1().Deployments(fakecluster.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	c.Refresh()
	info, err = r.Observe(ctx, ro)
	require.NoError(t, err)
	require.False(t, info.Held)
	require.NoError(t, r.Hold(ctx, ro, info))
	assert.True(t, c.Deployment("web").Spec.Paused)
}

func TestCanaryDeployment(t *testing.T) {
	ctx := context.Background()
	ro := newRollout(true)
	ro.Spec.Strategy.Canary.PatchPodTemplateMetadata = &v1beta1.PatchPodTemplateMetadata{Labels: map[string]string{"track": "canary"}}
	d := fakecluster.NewDeployment("web", "v1", 4, "25%", "25%")
	c := fakecluster.New(t, d, ro)
	c.Settle()
	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	r := NewCanary(c.Deps)

	for _, desired := range []int32{1, 2} {
		var ready bool
		for range 10 {
			info, err := r.Observe(ctx, ro)
			require.NoError(t, err)
			ready, err = r.Upgrade(ctx, ro, info, desired)
			require.NoError(t, err)
			if ready {
				break
			}
			c.Settle()
		}
		require.True(t, ready)
		cd := c.Deployment(CanaryName("web"))
		assert.Equal(t, desired, *cd.Spec.Replicas)
		assert.Equal(t, "v2", cd.Spec.Template.Spec.Containers[0].Image)
		assert.Equal(t, "canary", cd.Spec.Template.Labels["track"])
		assert.Equal(t, "true", cd.Spec.Selector.MatchLabels[CanaryLabel])
		assert.Equal(t, int32(4), *c.ReplicaSets("web")[stableHash(t, c)].Spec.Replicas, "the stable Deployment keeps all its pods")
	}

	// Finalise: the stable Deployment rolls out, then the canary goes.
	var done bool
	for range 10 {
		info, err := r.Observe(ctx, ro)
		require.NoError(t, err)
		done, err = r.Complete(ctx, ro, info)
		require.NoError(t, err)
		if done {
			break
		}
		c.Settle()
	}
	require.True(t, done)
	got := c.Deployment("web")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
	info, err := r.Observe(ctx, ro)
	require.NoError(t, err)
	done, err = r.Release(ctx, ro, info)
	require.NoError(t, err)
	assert.True(t, done)
	_, err = c.Kube.AppsV1().Deployments(fakecluster.Namespace).Get(ctx, CanaryName("web"), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the canary Deployment is removed at the end")
}

func TestCanaryRefusesForeignDeployment(t *testing.T) {
	ctx := context.Background()
	ro := newRollout(true)
	foreign := fakecluster.NewDeployment(CanaryName("web"), "other", 1, "1", "0")
	c := fakecluster.New(t, fakecluster.NewDeployment("web", "v1", 2, "1", "0"), foreign, ro)
	c.Settle()
	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	r := NewCanary(c.Deps)
	info, err := r.Observe(ctx, ro)
	require.Error(t, err)
	assert.Nil(t, info)
}

func stableHash(t *testing.T, c *fakecluster.Cluster) string {
	t.Helper()
	for hash, rs := range c.ReplicaSets("web") {
		if rs.Spec.Template.Spec.Containers[0].Image == "v1" {
			return hash
		}
	}
	t.Fatal("no stable ReplicaSet")
	return ""
}

// A decision, not an accident (docs/api.md, "Moving from Kruise Rollout"):
// when the workload is scaled down mid-release, the canary Deployment follows
// the step's share of the new total. 10 → 5 at a 60% step: Kruise keeps 6
// canary pods; we go to 3.
func TestCanaryFollowsAScaleDown(t *testing.T) {
	ctx := context.Background()
	ro := newRollout(true)
	c := fakecluster.New(t, fakecluster.NewDeployment("web", "v1", 10, "25%", "25%"), ro)
	c.Settle()
	c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	r := NewCanary(c.Deps)
	sixtyPercent := intstr.FromString("60%")
	step := v1beta1.CanaryStep{Replicas: &sixtyPercent}

	upgrade := func() int32 {
		t.Helper()
		var desired int32
		for range 10 {
			info, err := r.Observe(ctx, ro)
			require.NoError(t, err)
			desired, err = workload.StepReplicas(&step, info.Replicas)
			require.NoError(t, err)
			ready, err := r.Upgrade(ctx, ro, info, desired)
			require.NoError(t, err)
			if ready {
				return desired
			}
			c.Settle()
		}
		t.Fatalf("the canary never became ready at %d pods", desired)
		return 0
	}
	require.Equal(t, int32(6), upgrade())
	assert.Equal(t, int32(6), *c.Deployment(CanaryName("web")).Spec.Replicas)

	d := c.Deployment("web")
	d.Spec.Replicas = ptr.To[int32](5)
	_, err := c.Kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	c.Settle()
	require.Equal(t, int32(3), upgrade())
	assert.Equal(t, int32(3), *c.Deployment(CanaryName("web")).Spec.Replicas, "60% of the new total of 5")
}
