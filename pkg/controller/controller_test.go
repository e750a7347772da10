package controller

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

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

// TestRolloutsOfUsesTheWorkloadIndex: the lookup the webhook and every pass
// use answers from the index, with only the Rollouts of that workload.
func TestRolloutsOfUsesTheWorkloadIndex(t *testing.T) {
	c, err := New(Config{RolloutClient: rolloutfake.NewClientset(), KubeClient: kubefake.NewClientset()})
	require.NoError(t, err)
	web := fakecluster.NewRollout("web", v1beta1.KindDeployment, "web")
	webToo := fakecluster.NewRollout("web-too", v1beta1.KindDeployment, "web")
	db := fakecluster.NewRollout("db", v1beta1.KindStatefulSet, "web")
	other := fakecluster.NewRollout("api", v1beta1.KindDeployment, "api")
	for _, ro := range []*v1beta1.Rollout{web, webToo, db, other} {
		require.NoError(t, c.rolloutIndexer.Add(ro))
	}
	names := func(kind, name string) []string {
		got, err := c.RolloutsOf(web.Namespace, kind, name)
		require.NoError(t, err)
		var out []string
		for _, ro := range got {
			out = append(out, ro.Name)
		}
		return out
	}
	assert.ElementsMatch(t, []string{"web", "web-too"}, names(v1beta1.KindDeployment, "web"))
	assert.Equal(t, []string{"db"}, names(v1beta1.KindStatefulSet, "web"))
	assert.Empty(t, names(v1beta1.KindDeployment, "gone"))
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
	lister := rolloutlisters.NewRolloutLister(idx)
	store := newRolloutStore(lister, workload.ListerLookup(lister))
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

// TestWorkerRecoversFromPanic injects a panic into the first reconcile: the
// worker survives, the key is retried, and the Rollout still settles.
func TestWorkerRecoversFromPanic(t *testing.T) {
	web := fakecluster.NewDeployment("web", "v1", 2, "1", "0")
	kube := kubefake.NewClientset(web)
	rollouts := rolloutfake.NewClientset(fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web", fakecluster.Step("1", -1)))
	c, err := New(Config{RolloutClient: rollouts, KubeClient: kube, Workers: 1})
	require.NoError(t, err)
	var panics atomic.Int32
	real := c.syncHandler
	c.syncHandler = func(ctx context.Context, key string) (time.Duration, error) {
		if key == fakecluster.Namespace+"/ro" && panics.Add(1) == 1 {
			panic("injected")
		}
		return real(ctx, key)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	require.Eventually(t, func() bool {
		ro, err := rollouts.RolloutV1beta1().Rollouts(fakecluster.Namespace).Get(context.Background(), "ro", metav1.GetOptions{})
		return err == nil && ro.Status.Phase == v1beta1.RolloutPhaseHealthy
	}, 15*time.Second, 50*time.Millisecond, "the Rollout settles after the panicking reconcile is retried")
	assert.GreaterOrEqual(t, panics.Load(), int32(2), "the key was retried after the panic")
	cancel()
	require.NoError(t, <-done)
}

// TestLostLeaseStopsWorkersAndReturns makes Lease renewals fail once this
// replica leads: Run must cancel its workers and return
// ErrLeaderElectionLost, without campaigning again, and no worker may act
// after it returned.
func TestLostLeaseStopsWorkersAndReturns(t *testing.T) {
	web := fakecluster.NewDeployment("web", "v1", 2, "1", "0")
	kube := kubefake.NewClientset(web)
	election := kubefake.NewClientset()
	var broken atomic.Bool
	var leaseCalls atomic.Int32
	election.PrependReactor("*", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if broken.Load() {
			leaseCalls.Add(1)
			return true, nil, errors.New("injected: the Lease cannot be renewed")
		}
		return false, nil, nil
	})
	rollouts := rolloutfake.NewClientset(fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web", fakecluster.Step("1", -1)))
	c, err := New(Config{
		RolloutClient: rollouts, KubeClient: kube, LeaderElectionClient: election, Workers: 2,
		LeaderElection: LeaderElectionConfig{
			Enabled: true, Namespace: "rollout-system", Name: "rollout-test", Identity: "replica-a",
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
		},
	})
	require.NoError(t, err)
	var syncs, afterReturn atomic.Int32
	var returned atomic.Bool
	real := c.syncHandler
	c.syncHandler = func(ctx context.Context, key string) (time.Duration, error) {
		syncs.Add(1)
		if returned.Load() {
			afterReturn.Add(1)
		}
		return real(ctx, key)
	}
	live, ready := c.HealthChecks()
	require.Len(t, live, 1)
	require.Len(t, ready, 1)
	require.Error(t, ready[0].Check(nil), "not ready before the caches synced")

	done := make(chan error, 1)
	go func() {
		err := c.Run(context.Background())
		returned.Store(true)
		done <- err
	}()
	require.Eventually(t, func() bool { return syncs.Load() > 0 }, 15*time.Second, 20*time.Millisecond, "the leader's workers run")
	require.NoError(t, ready[0].Check(nil), "ready once the caches synced")
	require.NoError(t, live[0].Check(nil), "a leader that renews is healthy")

	broken.Store(true)
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrLeaderElectionLost)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the Lease was lost")
	}
	calls := leaseCalls.Load()
	// Give a re-campaign (one attempt per 100ms retry period) time to show.
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, calls, leaseCalls.Load(), "no Lease request after Run returned: it must not campaign again")
	assert.Zero(t, afterReturn.Load(), "no worker reconciled after Run returned")
	c.queueMu.RLock()
	assert.Nil(t, c.queue, "the term's queue was shut down")
	c.queueMu.RUnlock()
}

// TestDivergentStorageStopsAFollower: replicas on embedded etcds of their
// own name that storage in their Lease identity. A replica that finds the
// Lease held by a replica of another storage (a second replica with its own
// embedded etcd, which would serve a diverging copy of every Rollout) stops
// with ErrDivergentStorage; one of the same storage (the same replica,
// restarted) follows as usual.
func TestDivergentStorageStopsAFollower(t *testing.T) {
	kube := kubefake.NewClientset(fakecluster.NewDeployment("web", "v1", 2, "1", "0"))
	newReplicaOn := func(lease, identity, storage string) *Controller {
		c, err := New(Config{
			RolloutClient: rolloutfake.NewClientset(), KubeClient: kube, Workers: 1,
			LeaderElection: LeaderElectionConfig{
				Enabled: true, Namespace: "kube-system", Name: lease, Identity: identity, StorageID: storage,
				LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
			},
		})
		require.NoError(t, err)
		return c
	}
	newReplica := func(identity, storage string) *Controller { return newReplicaOn("rollout-test", identity, storage) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := func(c *Controller) chan error {
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return done
	}

	leader := run(newReplica("a", "1111"))
	require.Eventually(t, func() bool {
		lease, err := kube.CoordinationV1().Leases("kube-system").Get(ctx, "rollout-test", metav1.GetOptions{})
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == "a"+storageIdentityMark+"1111"
	}, 15*time.Second, 50*time.Millisecond, "a leads, its identity naming its storage")

	sameStorage := run(newReplica("a-restarted", "1111"))
	select {
	case err := <-sameStorage:
		t.Fatalf("a replica of the leader's storage stopped: %v", err)
	case <-time.After(time.Second):
	}

	select {
	case err := <-run(newReplica("b", "2222")):
		require.ErrorIs(t, err, ErrDivergentStorage)
		assert.Contains(t, err.Error(), "--etcd-servers")
	case <-time.After(15 * time.Second):
		t.Fatal("a replica of another embedded etcd kept running")
	}

	// A Lease left by a replica of another storage that is gone (its data
	// directory was replaced) expires and is taken over, with no error.
	now := metav1.NewMicroTime(time.Now())
	_, err := kube.CoordinationV1().Leases("kube-system").Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "rollout-stale", Namespace: "kube-system"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To("gone" + storageIdentityMark + "9999"), LeaseDurationSeconds: ptr.To[int32](2),
			AcquireTime: &now, RenewTime: &now,
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	takeover := run(newReplicaOn("rollout-stale", "c", "1111"))
	require.Eventually(t, func() bool {
		lease, err := kube.CoordinationV1().Leases("kube-system").Get(ctx, "rollout-stale", metav1.GetOptions{})
		return err == nil && *lease.Spec.HolderIdentity == "c"+storageIdentityMark+"1111"
	}, 15*time.Second, 50*time.Millisecond, "the expired Lease of a gone replica is taken over")
	select {
	case err := <-takeover:
		t.Fatalf("the replica that took the expired Lease over stopped: %v", err)
	case <-time.After(3 * time.Second):
	}

	cancel()
	for _, done := range []chan error{leader, sameStorage, takeover} {
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

// TestSyncWorkloadKeepsTheLabelWhileARolloutHoldsIt: a Rollout being
// disabled still holds its workload and must write it to hand it back, which
// the admission policy allows only while the workload carries the control
// label; the workload clean-up removes the label only once it is handed back.
func TestSyncWorkloadKeepsTheLabelWhileARolloutHoldsIt(t *testing.T) {
	web := fakecluster.NewDeployment("web", "v1", 2, "1", "0")
	web.Labels = map[string]string{v1beta1.WorkloadControlLabel: "true"}
	_, err := workload.HoldDeployment(nil, web)
	require.NoError(t, err)
	ro := fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web", fakecluster.Step("1", -1))
	ro.Spec.Disabled = true
	ro.Status.Phase = v1beta1.RolloutPhaseDisabling
	kube := kubefake.NewClientset(web)
	c, err := New(Config{RolloutClient: rolloutfake.NewClientset(ro), KubeClient: kube, Workers: 1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.kubeFactory.Start(ctx.Done())
	c.rolloutFactory.Start(ctx.Done())
	require.True(t, cache.WaitForCacheSync(ctx.Done(), c.synced...))

	key := workloadIndexKey(fakecluster.Namespace, v1beta1.KindDeployment, "web")
	label := func() string {
		d, err := kube.AppsV1().Deployments(fakecluster.Namespace).Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		return d.Labels[v1beta1.WorkloadControlLabel]
	}
	require.NoError(t, c.syncWorkload(ctx, key))
	assert.Equal(t, "true", label(), "kept while the disabled Rollout still holds the workload")

	d, err := kube.AppsV1().Deployments(fakecluster.Namespace).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	require.True(t, workload.ReleaseDeployment(d))
	_, err = kube.AppsV1().Deployments(fakecluster.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := c.deps.Deployments.Deployments(fakecluster.Namespace).Get("web")
		return err == nil && !workload.IsHeld(got)
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, c.syncWorkload(ctx, key))
	assert.Empty(t, label(), "removed once the workload is handed back")
}

// TestRolloutStoreEchoes: a settled status write's own watch event is
// recognised once; a user's write, a resync of the same version and an
// unknown version are not, and a deleted Rollout leaves nothing behind.
func TestRolloutStoreEchoes(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	lister := rolloutlisters.NewRolloutLister(idx)
	store := newRolloutStore(lister, workload.ListerLookup(lister))
	at := func(rv string) *v1beta1.Rollout {
		ro := fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web")
		ro.ResourceVersion = rv
		return ro
	}
	store.Settled(at("11"))
	store.Settled(at("12"))
	assert.False(t, store.echo(at("13")), "a version the reconciler did not write")
	assert.True(t, store.echo(at("11")))
	assert.False(t, store.echo(at("11")), "each echo is recognised once: a resync of it is reconciled")
	assert.True(t, store.echo(at("12")))
	assert.Empty(t, store.settled)

	for i := 0; i < 3*maxSettled; i++ {
		store.Settled(at(strconv.Itoa(100 + i)))
	}
	assert.Len(t, store.settled["default/ro"], maxSettled, "bounded when events never come")
	assert.True(t, store.echo(at(strconv.Itoa(100+3*maxSettled-2))))
	assert.Len(t, store.settled["default/ro"], 1, "older versions are forgotten with the one delivered")
	store.forget("default", "ro")
	assert.Empty(t, store.settled)
}
