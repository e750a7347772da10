package apiserver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// POST rollouts/NAME/retry through the real server: refused with 409 unless
// the Rollout is Aborted, refused with 409 on a stale precondition, recorded
// in status.pendingAction otherwise, in both versions.
func TestRetry(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	setStatus(ctx, t, ns, "web", atStep(2, v1beta1.CanaryStepStatePaused))

	_, err := rollouts(ns).Retry(ctx, "web", &v1beta1.RolloutRetry{}, metav1.CreateOptions{})
	require.True(t, apierrors.IsConflict(err), "retry while Progressing: got %v", err)
	assert.Contains(t, err.Error(), "nothing to retry: the Rollout is Progressing, not Aborted")

	aborted := atStep(2, v1beta1.CanaryStepStatePaused)
	aborted.Phase = v1beta1.RolloutPhaseAborted
	aborted.Abort = &v1beta1.RolloutAbortStatus{Reason: v1beta1.AbortReasonUser, Revision: "5d8f7c9b", StepIndex: 2}
	setStatus(ctx, t, ns, "web", aborted)

	_, err = rollouts(ns).Retry(ctx, "web", &v1beta1.RolloutRetry{Preconditions: &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](1)}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsConflict(err), "stale precondition: got %v", err)
	assert.Contains(t, err.Error(), `the request was for step 1, but the Rollout is at step 2 (StepPaused) of canary revision "5d8f7c9b"`)

	_, err = rollouts(ns).Retry(ctx, "web", &v1beta1.RolloutRetry{Preconditions: &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](-1)}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsInvalid(err), "stepIndex -1: got %v", err)
	assert.Contains(t, err.Error(), "preconditions.stepIndex")

	got, err := rollouts(ns).Retry(ctx, "web", &v1beta1.RolloutRetry{Preconditions: &v1beta1.ActionPreconditions{
		StepIndex: ptr.To[int32](2), CanaryRevision: "5d8f7c9b"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotNil(t, got.Status.PendingAction)
	assert.Equal(t, v1beta1.RolloutActionRetry, got.Status.PendingAction.Type)
	assert.Equal(t, int32(2), got.Status.PendingAction.StepIndex)
	assert.NotEmpty(t, got.Status.PendingAction.RequestedBy)

	// The same through v1alpha1: already recorded, so the same Rollout comes back.
	alpha, err := server.Client.RolloutV1alpha1().Rollouts(ns).Retry(ctx, "web", &v1alpha1.RolloutRetry{}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.Equal(t, got.ResourceVersion, alpha.ResourceVersion, "a repeated retry writes nothing")
	assert.Equal(t, v1alpha1.RolloutPhase(v1beta1.RolloutPhaseAborted), alpha.Status.Phase)
}
