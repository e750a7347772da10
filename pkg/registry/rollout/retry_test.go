package rollout

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// aborted is a Rollout whose release of revision 5d8f7c9b was aborted at step 2.
func aborted() *rollout.Rollout {
	r := progressing(newRollout("web"), 2, rollout.CanaryStepStateUpgrade)
	r.Status.Phase = rollout.RolloutPhaseAborted
	r.Status.Abort = &rollout.RolloutAbortStatus{Reason: rollout.AbortReasonUser, Revision: "5d8f7c9b", StepIndex: 2}
	return r
}

func TestRetry(t *testing.T) {
	runActionCases(t, retryAction{}, []actionCase{
		{
			name:     "a release in progress has nothing to retry",
			r:        func() *rollout.Rollout { return progressing(newRollout("web"), 1, rollout.CanaryStepStatePaused) },
			request:  &rollout.RolloutRetry{},
			conflict: "nothing to retry: the Rollout is Progressing, not Aborted",
		},
		{
			name: "a healthy Rollout has nothing to retry",
			r: func() *rollout.Rollout {
				r := newRollout("web")
				r.Status.Phase = rollout.RolloutPhaseHealthy
				return r
			},
			request:  &rollout.RolloutRetry{},
			conflict: "the Rollout is Healthy, not Aborted",
		},
		{
			name: "a disabled Rollout is not retried",
			r: func() *rollout.Rollout {
				r := aborted()
				r.Spec.Disabled = true
				return r
			},
			request:  &rollout.RolloutRetry{},
			conflict: "the Rollout is disabled",
		},
		{
			name:    "retry records who asked and the step it was aborted at",
			r:       aborted,
			request: &rollout.RolloutRetry{},
			check: func(t *testing.T, before, after *rollout.Rollout) {
				assert.Equal(t, &rollout.RolloutActionRequest{
					Type: rollout.RolloutActionRetry, StepIndex: 2,
					RequestedBy: "alice", RequestedAt: alice.at,
				}, after.Status.PendingAction)
				after.Status.PendingAction = nil
				assert.Equal(t, before, after, "nothing else changes")
			},
		},
		{
			name: "a second retry is a no-op",
			r: func() *rollout.Rollout {
				return withPending(aborted(), rollout.RolloutActionRequest{Type: rollout.RolloutActionRetry, StepIndex: 2, RequestedBy: "bob"})
			},
			request: &rollout.RolloutRetry{},
			check:   unchanged,
		},
		{
			name:    "matching preconditions are accepted",
			r:       aborted,
			request: &rollout.RolloutRetry{Preconditions: &rollout.ActionPreconditions{StepIndex: ptr.To[int32](2), CanaryRevision: "5d8f7c9b"}},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				require.NotNil(t, after.Status.PendingAction)
				assert.Equal(t, rollout.RolloutActionRetry, after.Status.PendingAction.Type)
			},
		},
		{
			name:     "a retry meant for another step is refused with both steps named",
			r:        aborted,
			request:  &rollout.RolloutRetry{Preconditions: &rollout.ActionPreconditions{StepIndex: ptr.To[int32](1)}},
			conflict: `the request was for step 1, but the Rollout is at step 2`,
		},
		{
			name:     "a retry meant for another revision is refused",
			r:        aborted,
			request:  &rollout.RolloutRetry{Preconditions: &rollout.ActionPreconditions{CanaryRevision: "0000aaaa"}},
			conflict: `canary revision "0000aaaa", but the Rollout is at step 2`,
		},
	})
}

func TestRetryBadBodies(t *testing.T) {
	assert.IsType(t, &rollout.RolloutRetry{}, retryAction{}.newRequest())
	errs := retryAction{}.validate(&rollout.RolloutRetry{Preconditions: &rollout.ActionPreconditions{StepIndex: ptr.To[int32](-1)}})
	require.Len(t, errs, 1)
	assert.Equal(t, "preconditions.stepIndex", errs[0].Field)

	// A nil store proves that nothing is read or written for a bad body.
	_, err := newActionREST(nil, "retry", retryAction{}, nil, nil, nil).Create(context.Background(), "web",
		&rollout.RolloutRetry{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, nil, &metav1.CreateOptions{})
	assert.True(t, apierrors.IsBadRequest(err), "got %v", err)
	_, err = newActionREST(nil, "retry", retryAction{}, nil, nil, nil).Create(context.Background(), "web",
		&rollout.RolloutRetry{Preconditions: &rollout.ActionPreconditions{StepIndex: ptr.To[int32](-1)}}, nil, &metav1.CreateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "got %v", err)
}
