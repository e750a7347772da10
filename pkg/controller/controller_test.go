package controller

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/release"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	rolloutfake "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned/fake"
	rolloutlisters "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/listers/rollout/v1beta1"
)

func TestNewValidatesAndDefaults(t *testing.T) {
	_, err := New(Config{})
	require.Error(t, err)

	c, err := New(Config{RolloutClient: rolloutfake.NewClientset(), KubeClient: kubefake.NewClientset()})
	require.NoError(t, err)
	assert.Equal(t, DefaultWorkers, c.cfg.Workers)
	assert.Equal(t, DefaultLeaseName, c.cfg.LeaderElection.Name)
	assert.NotEmpty(t, c.cfg.LeaderElection.Identity)
	assert.NotNil(t, c.RolloutLister())
	assert.False(t, c.HasSynced())
}

// TestRunWithLeaderElection runs the whole controller against fake clients:
// it takes the Lease, puts the finalizer on the Rollout and the control label
// on its workload, cleans up a workload whose Rollout is gone, and stops when
// its context ends.
func TestRunWithLeaderElection(t *testing.T) {
	web := fakecluster.NewDeployment("web", "v1", 2, "1", "0")
	orphan := fakecluster.NewDeployment("orphan", "v1", 1, "1", "0")
	orphan.Labels = map[string]string{v1beta1.WorkloadControlLabel: "true"}
	original := orphan.Spec.Strategy
	_, err := workload.HoldDeployment(nil, orphan)
	require.NoError(t, err)
	kube := kubefake.NewClientset(web, orphan)
	rollouts := rolloutfake.NewClientset(fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web", fakecluster.Step("1", -1)))

	c, err := New(Config{
		RolloutClient: rollouts,
		KubeClient:    kube,
		Workers:       1,
		LeaderElection: LeaderElectionConfig{
			Enabled: true, Namespace: "kube-system", Name: "rollout-test", Identity: "replica-a",
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	bg := context.Background()
	require.Eventually(t, func() bool {
		ro, err := rollouts.RolloutV1beta1().Rollouts(fakecluster.Namespace).Get(bg, "ro", metav1.GetOptions{})
		if err != nil {
			return false
		}
		d, err := kube.AppsV1().Deployments(fakecluster.Namespace).Get(bg, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		hasFinalizer := len(ro.Finalizers) == 1 && ro.Finalizers[0] == release.Finalizer
		return hasFinalizer && d.Labels[v1beta1.WorkloadControlLabel] == "true" && ro.Status.Phase == v1beta1.RolloutPhaseHealthy
	}, 15*time.Second, 50*time.Millisecond)

	require.Eventually(t, func() bool {
		d, err := kube.AppsV1().Deployments(fakecluster.Namespace).Get(bg, "orphan", metav1.GetOptions{})
		return err == nil && !workload.IsHeld(d) && d.Labels[v1beta1.WorkloadControlLabel] == "" && !d.Spec.Paused
	}, 15*time.Second, 50*time.Millisecond, "a held workload without a Rollout is released and unlabelled")
	d, err := kube.AppsV1().Deployments(fakecluster.Namespace).Get(bg, "orphan", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, original, d.Spec.Strategy)

	lease, err := kube.CoordinationV1().Leases("kube-system").Get(bg, "rollout-test", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "replica-a", *lease.Spec.HolderIdentity)
	assert.True(t, c.HasSynced())

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRolloutStorePrefersNewerWrites(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	store := newRolloutStore(rolloutlisters.NewRolloutLister(idx))
	cached := fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web")
	cached.ResourceVersion = "10"
	require.NoError(t, idx.Add(cached))

	written := cached.DeepCopy()
	written.ResourceVersion = "11"
	written.Status.Phase = v1beta1.RolloutPhaseProgressing
	store.Written(written)
	got, err := store.Get(fakecluster.Namespace, "ro")
	require.NoError(t, err)
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, got.Status.Phase, "our own write wins until the informer catches up")

	caughtUp := written.DeepCopy()
	caughtUp.ResourceVersion = "12"
	require.NoError(t, idx.Update(caughtUp))
	got, err = store.Get(fakecluster.Namespace, "ro")
	require.NoError(t, err)
	assert.Equal(t, "12", got.ResourceVersion)

	odd := caughtUp.DeepCopy()
	odd.ResourceVersion = "not-a-number"
	store.Written(odd)
	got, err = store.Get(fakecluster.Namespace, "ro")
	require.NoError(t, err)
	assert.Equal(t, "12", got.ResourceVersion, "an unreadable version never beats the cache")

	require.NoError(t, idx.Delete(caughtUp))
	_, err = store.Get(fakecluster.Namespace, "ro")
	require.Error(t, err)
}
