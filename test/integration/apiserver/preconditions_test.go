package apiserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	clientset "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// fakeStepper plays the controller's part in a promote: it applies a pending
// promote of the current step by moving to the next step, paused again, in
// the same status write that clears the request (as the real controller does),
// and drops a promote of any other step.
func fakeStepper(ctx context.Context, t *testing.T, ns, name string, steps int32) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				r, err := rollouts(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil || r.Status.PendingAction == nil {
					return err
				}
				step := r.Status.CurrentStepIndex
				if p := r.Status.PendingAction; p.Type == v1beta1.RolloutActionPromote && p.StepIndex == step && step < steps {
					r.Status = atStep(step+1, v1beta1.CanaryStepStatePaused)
				}
				r.Status.PendingAction = nil
				_, err = rollouts(ns).UpdateStatus(ctx, r, metav1.UpdateOptions{})
				return err
			})
		}
	}()
	return func() { close(done); wg.Wait() }
}

// promoteRace runs one trial: three people promote step 1 about 20 ms apart
// while the controller applies promotes as they come. It returns the step the
// release ends at once every request is answered and applied.
func promoteRace(ctx context.Context, t *testing.T, ns, name string, withPrecondition bool) (int32, int) {
	create(ctx, t, ns, newRollout(name, name))
	setStatus(ctx, t, ns, name, atStep(1, v1beta1.CanaryStepStatePaused))
	stop := fakeStepper(ctx, t, ns, name, 3)
	defer stop()

	body := &v1beta1.RolloutPromote{}
	if withPrecondition {
		body.Preconditions = &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](1), CanaryRevision: "5d8f7c9b"}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 20 * time.Millisecond)
			_, err := rollouts(ns).Promote(ctx, name, body, metav1.CreateOptions{})
			if err != nil {
				assert.True(t, apierrors.IsConflict(err), "a refused promote is a 409, got %v", err)
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var step int32
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := rollouts(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		step = r.Status.CurrentStepIndex
		return r.Status.PendingAction == nil, nil
	})
	require.NoError(t, err, "the last promote was never applied")
	return step, refused
}

// Concurrent promotes of step 1 carrying the precondition stepIndex: 1 move
// the release exactly one step in every trial; without it a late promote
// lands on step 2 and skips it. The figures of both are logged.
func TestConcurrentPromotesWithPreconditions(t *testing.T) {
	const trials = 20
	for _, with := range []bool{true, false} {
		skipped := 0
		for i := range trials {
			ctx, ns := testContext(t), newNamespace(t)
			step, refused := promoteRace(ctx, t, ns, fmt.Sprintf("web-%d", i), with)
			if step > 2 {
				skipped++
			}
			if with {
				assert.Equal(t, int32(2), step, "trial %d: the release must move exactly one step (%d promotes refused)", i, refused)
			}
		}
		t.Logf("precondition=%v: %d of %d trials skipped a step", with, skipped, trials)
		if with {
			assert.Zero(t, skipped)
		}
	}
}

// A promote sent after the step moved on is refused with a 409 that says
// where the release is now; nothing is recorded.
func TestStalePromoteIsAConflict(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	setStatus(ctx, t, ns, "web", atStep(2, v1beta1.CanaryStepStatePaused))

	_, err := rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{
		Preconditions: &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](1)},
	}, metav1.CreateOptions{})
	require.True(t, apierrors.IsConflict(err), "got %v", err)
	assert.Contains(t, err.Error(), `the Rollout is at step 2 (StepPaused) of canary revision "5d8f7c9b"`)
	r, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Nil(t, r.Status.PendingAction)

	// A jump beyond the steps is a 422 naming toStepIndex.
	_, err = rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{ToStepIndex: ptr.To[int32](9)}, metav1.CreateOptions{})
	require.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Contains(t, causeFields(err), "toStepIndex")

	// A jump back is recorded for the controller.
	r, err = rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{ToStepIndex: ptr.To[int32](1)}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotNil(t, r.Status.PendingAction)
	assert.Equal(t, ptr.To[int32](1), r.Status.PendingAction.ToStepIndex)
}

// Kruise's own approve and jump, status patches by a user, become the same
// recorded promote as the subresource's; any other status write by a user is
// refused.
func TestKruiseStatusPatchesBecomePromotes(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))

	cfg := rest.CopyConfig(server.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"system:masters"}}
	alice := clientset.NewForConfigOrDie(cfg).RolloutV1beta1().Rollouts(ns)
	patch := func(body string) (*v1beta1.Rollout, error) {
		return alice.Patch(ctx, "web", types.MergePatchType, []byte(body), metav1.PatchOptions{}, "status")
	}

	r, err := patch(`{"status":{"canaryStatus":{"currentStepState":"StepReady"}}}`)
	require.NoError(t, err)
	require.NotNil(t, r.Status.PendingAction, "the approve is recorded as a promote")
	assert.Equal(t, v1beta1.RolloutActionPromote, r.Status.PendingAction.Type)
	assert.Equal(t, int32(1), r.Status.PendingAction.StepIndex)
	assert.Equal(t, "alice", r.Status.PendingAction.RequestedBy)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, r.Status.CanaryStatus.CurrentStepState, "the state itself is the controller's to change")

	setStatus(ctx, t, ns, "web", atStep(2, v1beta1.CanaryStepStatePaused))
	r, err = patch(`{"status":{"canaryStatus":{"nextStepIndex":1}}}`)
	require.NoError(t, err)
	require.NotNil(t, r.Status.PendingAction, "the jump is recorded as a promote to step 1")
	assert.Equal(t, ptr.To[int32](1), r.Status.PendingAction.ToStepIndex)
	assert.Equal(t, int32(3), r.Status.CanaryStatus.NextStepIndex)

	setStatus(ctx, t, ns, "web", atStep(2, v1beta1.CanaryStepStatePaused))
	for _, body := range []string{
		`{"status":{"phase":"Healthy"}}`,
		`{"status":{"pendingAction":{"type":"Abort"}}}`,
		`{"status":{"canaryStatus":{"nextStepIndex":7}}}`,
		`{"status":{"canaryStatus":{"currentStepState":"StepReady","canaryReplicas":9}}}`,
	} {
		_, err := patch(body)
		require.True(t, apierrors.IsInvalid(err), "%s: got %v", body, err)
		assert.Contains(t, err.Error(), "status is written by the controller", body)
	}
}

// A v1alpha1 client is told about the fields it sent, by their v1alpha1 names;
// a Kruise-style weight-only step is accepted.
func TestV1alpha1ValidationErrorPaths(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	alpha := server.Client.RolloutV1alpha1().Rollouts(ns)
	valid := func() *v1alpha1.Rollout {
		return &v1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: v1alpha1.RolloutSpec{
				ObjectRef: v1alpha1.ObjectRef{WorkloadRef: &v1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
				Strategy: v1alpha1.RolloutStrategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
					{TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](20)}},
					{TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](100)}},
				}, TrafficRoutings: []v1alpha1.TrafficRoutingRef{{
					Service: "web", Ingress: &v1alpha1.IngressTrafficRouting{Name: "web"},
				}}}},
			},
		}
	}
	cases := []struct {
		name    string
		breakIt func(r *v1alpha1.Rollout)
		path    string
	}{
		{"no workload name", func(r *v1alpha1.Rollout) { r.Spec.ObjectRef.WorkloadRef.Name = "" }, "spec.objectRef.workloadRef.name"},
		{"weight over 100", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Canary.Steps[0].Weight = ptr.To[int32](101) }, "spec.strategy.canary.steps[0].weight"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.breakIt(r)
			_, err := alpha.Create(ctx, r, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			require.True(t, apierrors.IsInvalid(err), "got %v", err)
			assert.Contains(t, causeFields(err), tc.path)
		})
	}
	created, err := alpha.Create(ctx, valid(), metav1.CreateOptions{})
	require.NoError(t, err, "Kruise's weight-only steps are accepted")
	assert.Equal(t, ptr.To(intstr.FromString("20%")), created.Spec.Strategy.Canary.Steps[0].Replicas)
	assert.Equal(t, ptr.To(true), created.Spec.Strategy.Canary.EnableExtraWorkloadForCanary, "no rolling-style: partition means canary style, as in Kruise")
}
