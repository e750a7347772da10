package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

var alice = actor{user: "alice", at: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}

// actionCase is one action applied to a Rollout in one state.
type actionCase struct {
	name    string
	r       func() *rollout.Rollout
	request runtime.Object
	// conflict, when set, is a part of the 409's message; the Rollout must be unchanged.
	conflict string
	// check inspects the changed Rollout of a success.
	check func(t *testing.T, before, after *rollout.Rollout)
}

func runActionCases(t *testing.T, a action, cases []actionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.r()
			after := before.DeepCopy()
			err := a.apply(after, tc.request, alice)
			if tc.conflict != "" {
				require.Error(t, err)
				assert.True(t, apierrors.IsConflict(err), "want a 409 Conflict, got %v", err)
				assert.Contains(t, err.Error(), tc.conflict)
				assert.Equal(t, before, after, "a refused action changes nothing")
				return
			}
			require.NoError(t, err)
			tc.check(t, before, after)
		})
	}
}

func withPending(r *rollout.Rollout, p rollout.RolloutActionRequest) *rollout.Rollout {
	r.Status.PendingAction = &p
	return r
}

func paused(r *rollout.Rollout) *rollout.Rollout {
	r.Spec.Strategy.Paused = true
	return r
}

func unchanged(t *testing.T, before, after *rollout.Rollout) {
	assert.Equal(t, before, after, "a repeated request is a no-op")
}

func TestPromote(t *testing.T) {
	atPause := func() *rollout.Rollout { return progressing(newRollout("web"), 1, rollout.CanaryStepStatePaused) }
	runActionCases(t, promoteAction{}, []actionCase{
		{
			name:     "a new Rollout has nothing to promote",
			r:        func() *rollout.Rollout { return newRollout("web") },
			request:  &rollout.RolloutPromote{},
			conflict: "the Rollout is Initial, not Progressing",
		},
		{
			name: "a healthy Rollout has nothing to promote",
			r: func() *rollout.Rollout {
				r := newRollout("web")
				r.Status.Phase = rollout.RolloutPhaseHealthy
				return r
			},
			request:  &rollout.RolloutPromote{Full: true},
			conflict: "the Rollout is Healthy, not Progressing",
		},
		{
			name:     "a paused Rollout must be resumed first",
			r:        func() *rollout.Rollout { return paused(atPause()) },
			request:  &rollout.RolloutPromote{},
			conflict: "resume it before promoting",
		},
		{
			name:     "a step that is not waiting cannot be promoted without full",
			r:        func() *rollout.Rollout { return progressing(newRollout("web"), 1, rollout.CanaryStepStateUpgrade) },
			request:  &rollout.RolloutPromote{},
			conflict: "step 1 is in state StepUpgrade, not waiting to be promoted",
		},
		{
			name: "the same promote again is a no-op",
			r: func() *rollout.Rollout {
				return withPending(atPause(), rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 1, RequestedBy: "bob"})
			},
			request: &rollout.RolloutPromote{},
			check:   unchanged,
		},
		{
			name: "a promote of another step is pending",
			r: func() *rollout.Rollout {
				return withPending(progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused),
					rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 1})
			},
			request:  &rollout.RolloutPromote{},
			conflict: "Promote of step 1 is already pending",
		},
		{
			name: "a full promote is pending and a step promote is asked",
			r: func() *rollout.Rollout {
				return withPending(atPause(), rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 1, Full: true})
			},
			request:  &rollout.RolloutPromote{},
			conflict: "Promote of step 1 is already pending",
		},
		{
			name: "an abort is pending",
			r: func() *rollout.Rollout {
				return withPending(atPause(), rollout.RolloutActionRequest{Type: rollout.RolloutActionAbort, StepIndex: 1})
			},
			request:  &rollout.RolloutPromote{Full: true},
			conflict: "Abort of step 1 is already pending",
		},
		{
			name:    "promote of a paused step records a pending promote",
			r:       atPause,
			request: &rollout.RolloutPromote{},
			check: func(t *testing.T, before, after *rollout.Rollout) {
				assert.Equal(t, &rollout.RolloutActionRequest{
					Type: rollout.RolloutActionPromote, StepIndex: 1, RequestedBy: "alice", RequestedAt: alice.at,
				}, after.Status.PendingAction)
				after.Status.PendingAction = nil
				assert.Equal(t, before, after, "nothing else changes")
			},
		},
		{
			name: "a step in its metric checks may be promoted past them",
			r: func() *rollout.Rollout {
				return progressing(newRollout("web"), 2, rollout.CanaryStepStateMetricsAnalysis)
			},
			request: &rollout.RolloutPromote{},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				assert.Equal(t, &rollout.RolloutActionRequest{
					Type: rollout.RolloutActionPromote, StepIndex: 2, RequestedBy: "alice", RequestedAt: alice.at,
				}, after.Status.PendingAction)
			},
		},
		{
			name:    "full promote works in any step state",
			r:       func() *rollout.Rollout { return progressing(newRollout("web"), 2, rollout.CanaryStepStateUpgrade) },
			request: &rollout.RolloutPromote{Full: true},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				assert.Equal(t, &rollout.RolloutActionRequest{
					Type: rollout.RolloutActionPromote, StepIndex: 2, Full: true, RequestedBy: "alice", RequestedAt: alice.at,
				}, after.Status.PendingAction)
			},
		},
	})
}

func TestAbort(t *testing.T) {
	atPause := func() *rollout.Rollout { return progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused) }
	runActionCases(t, abortAction{}, []actionCase{
		{
			name:     "a new Rollout has nothing to abort",
			r:        func() *rollout.Rollout { return newRollout("web") },
			request:  &rollout.RolloutAbort{},
			conflict: "nothing to abort: the Rollout is Initial, not Progressing",
		},
		{
			name: "a disabled Rollout has nothing to abort",
			r: func() *rollout.Rollout {
				r := newRollout("web")
				r.Status.Phase = rollout.RolloutPhaseDisabled
				return r
			},
			request:  &rollout.RolloutAbort{Reason: "x"},
			conflict: "the Rollout is Disabled",
		},
		{
			name:    "abort records who and why",
			r:       atPause,
			request: &rollout.RolloutAbort{Reason: "error rate too high"},
			check: func(t *testing.T, before, after *rollout.Rollout) {
				assert.Equal(t, &rollout.RolloutActionRequest{
					Type: rollout.RolloutActionAbort, StepIndex: 2, Reason: "error rate too high",
					RequestedBy: "alice", RequestedAt: alice.at,
				}, after.Status.PendingAction)
				after.Status.PendingAction = nil
				assert.Equal(t, before, after, "nothing else changes")
			},
		},
		{
			name:    "without a reason the user is named",
			r:       atPause,
			request: &rollout.RolloutAbort{},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				require.NotNil(t, after.Status.PendingAction)
				assert.Equal(t, "aborted by alice", after.Status.PendingAction.Reason)
			},
		},
		{
			name: "abort replaces a pending promote",
			r: func() *rollout.Rollout {
				return withPending(atPause(), rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 2, RequestedBy: "bob"})
			},
			request: &rollout.RolloutAbort{Reason: "stop"},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				require.NotNil(t, after.Status.PendingAction)
				assert.Equal(t, rollout.RolloutActionAbort, after.Status.PendingAction.Type)
				assert.Equal(t, "alice", after.Status.PendingAction.RequestedBy)
				assert.Equal(t, "stop", after.Status.PendingAction.Reason)
			},
		},
		{
			name: "a second abort is a no-op and keeps the first reason",
			r: func() *rollout.Rollout {
				return withPending(atPause(), rollout.RolloutActionRequest{Type: rollout.RolloutActionAbort, StepIndex: 2, Reason: "first", RequestedBy: "bob"})
			},
			request: &rollout.RolloutAbort{Reason: "second"},
			check:   unchanged,
		},
		{
			name:    "a paused Rollout can still be aborted",
			r:       func() *rollout.Rollout { return paused(atPause()) },
			request: &rollout.RolloutAbort{},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				require.NotNil(t, after.Status.PendingAction)
				assert.Equal(t, rollout.RolloutActionAbort, after.Status.PendingAction.Type)
			},
		},
	})
}

func TestPauseAndResume(t *testing.T) {
	runActionCases(t, pauseAction{}, []actionCase{
		{
			name:    "pause sets spec.strategy.paused",
			r:       func() *rollout.Rollout { return progressing(newRollout("web"), 1, rollout.CanaryStepStateUpgrade) },
			request: &rollout.RolloutPause{},
			check: func(t *testing.T, before, after *rollout.Rollout) {
				assert.True(t, after.Spec.Strategy.Paused)
				after.Spec.Strategy.Paused = false
				assert.Equal(t, before, after, "nothing else changes")
			},
		},
		{
			name:    "a Rollout with no release can be paused ahead of one",
			r:       func() *rollout.Rollout { return newRollout("web") },
			request: &rollout.RolloutPause{},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				assert.True(t, after.Spec.Strategy.Paused)
			},
		},
		{
			name:    "pausing a paused Rollout answers with it unchanged",
			r:       func() *rollout.Rollout { return paused(newRollout("web")) },
			request: &rollout.RolloutPause{},
			check:   unchanged,
		},
		{
			name:     "a pause meant for another step is refused",
			r:        func() *rollout.Rollout { return progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused) },
			request:  &rollout.RolloutPause{Preconditions: &rollout.ActionPreconditions{StepIndex: ptr.To[int32](1)}},
			conflict: "the Rollout is at step 2 (StepPaused)",
		},
	})
	runActionCases(t, resumeAction{}, []actionCase{
		{
			name: "resume clears spec.strategy.paused",
			r: func() *rollout.Rollout {
				return paused(progressing(newRollout("web"), 1, rollout.CanaryStepStateUpgrade))
			},
			request: &rollout.RolloutResume{},
			check: func(t *testing.T, before, after *rollout.Rollout) {
				assert.False(t, after.Spec.Strategy.Paused)
				after.Spec.Strategy.Paused = true
				assert.Equal(t, before, after, "nothing else changes")
			},
		},
		{
			name:    "resuming a Rollout that is not paused answers with it unchanged",
			r:       func() *rollout.Rollout { return newRollout("web") },
			request: &rollout.RolloutResume{},
			check:   unchanged,
		},
		{
			name: "a resume meant for another revision is refused",
			r: func() *rollout.Rollout {
				return paused(progressing(newRollout("web"), 1, rollout.CanaryStepStateUpgrade))
			},
			request:  &rollout.RolloutResume{Preconditions: &rollout.ActionPreconditions{CanaryRevision: "old"}},
			conflict: `canary revision "5d8f7c9b"`,
		},
	})
}

// Pause and resume, each applied twice in a row: the second of each succeeds
// and changes nothing, like a repeated promote or abort.
func TestPauseResumeTwice(t *testing.T) {
	r := newRollout("web")
	require.NoError(t, pauseAction{}.apply(r, &rollout.RolloutPause{}, alice))
	require.NoError(t, pauseAction{}.apply(r, &rollout.RolloutPause{}, alice))
	assert.True(t, r.Spec.Strategy.Paused)
	require.NoError(t, resumeAction{}.apply(r, &rollout.RolloutResume{}, alice))
	require.NoError(t, resumeAction{}.apply(r, &rollout.RolloutResume{}, alice))
	assert.False(t, r.Spec.Strategy.Paused)
}

func TestPromotePreconditionsAndJumps(t *testing.T) {
	at := func(step int32, state rollout.CanaryStepState) func() *rollout.Rollout {
		return func() *rollout.Rollout { return progressing(newRollout("web"), step, state) }
	}
	pre := func(step int32, rev string) *rollout.ActionPreconditions {
		return &rollout.ActionPreconditions{StepIndex: ptr.To(step), CanaryRevision: rev}
	}
	runActionCases(t, promoteAction{}, []actionCase{
		{
			name:    "a promote for the current step and revision is recorded",
			r:       at(2, rollout.CanaryStepStatePaused),
			request: &rollout.RolloutPromote{Preconditions: pre(2, "5d8f7c9b")},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				require.NotNil(t, after.Status.PendingAction)
				assert.Equal(t, int32(2), after.Status.PendingAction.StepIndex)
			},
		},
		{
			name:     "a promote for a step that has passed is refused with where the release is",
			r:        at(3, rollout.CanaryStepStatePaused),
			request:  &rollout.RolloutPromote{Preconditions: pre(2, "")},
			conflict: `precondition failed: the request was for step 2, but the Rollout is at step 3 (StepPaused) of canary revision "5d8f7c9b"`,
		},
		{
			name:     "a promote for another revision is refused",
			r:        at(2, rollout.CanaryStepStatePaused),
			request:  &rollout.RolloutPromote{Preconditions: pre(2, "0000")},
			conflict: `the request was for step 2 of canary revision "0000"`,
		},
		{
			name: "a second promote for the same step, sent after the first was applied, is refused",
			r: func() *rollout.Rollout {
				return withPending(progressing(newRollout("web"), 2, rollout.CanaryStepStateReady),
					rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 1})
			},
			request:  &rollout.RolloutPromote{Preconditions: pre(1, "")},
			conflict: "the Rollout is at step 2",
		},
		{
			name:    "a jump back is recorded in any state of the current step",
			r:       at(3, rollout.CanaryStepStateUpgrade),
			request: &rollout.RolloutPromote{ToStepIndex: ptr.To[int32](1)},
			check: func(t *testing.T, _, after *rollout.Rollout) {
				require.NotNil(t, after.Status.PendingAction)
				assert.Equal(t, ptr.To[int32](1), after.Status.PendingAction.ToStepIndex)
				assert.Equal(t, int32(3), after.Status.PendingAction.StepIndex)
			},
		},
		{
			name: "the same jump sent again is one jump",
			r: func() *rollout.Rollout {
				return withPending(at(1, rollout.CanaryStepStatePaused)(),
					rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 1, ToStepIndex: ptr.To[int32](3)})
			},
			request: &rollout.RolloutPromote{ToStepIndex: ptr.To[int32](3)},
			check:   unchanged,
		},
	})
}

func TestPromoteTargetBeyondTheStepsIsInvalid(t *testing.T) {
	r := progressing(newRollout("web"), 1, rollout.CanaryStepStatePaused)
	err := promoteAction{}.apply(r, &rollout.RolloutPromote{ToStepIndex: ptr.To[int32](4)}, alice)
	require.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Contains(t, err.Error(), "toStepIndex")
	assert.Contains(t, err.Error(), "the Rollout has 3 steps")
	assert.Nil(t, r.Status.PendingAction)
}

func TestActionRequestTypes(t *testing.T) {
	assert.IsType(t, &rollout.RolloutPromote{}, promoteAction{}.newRequest())
	assert.IsType(t, &rollout.RolloutPause{}, pauseAction{}.newRequest())
	assert.IsType(t, &rollout.RolloutResume{}, resumeAction{}.newRequest())
	assert.IsType(t, &rollout.RolloutAbort{}, abortAction{}.newRequest())

	assert.Empty(t, abortAction{}.validate(&rollout.RolloutAbort{Reason: "short"}))
	errs := abortAction{}.validate(&rollout.RolloutAbort{Reason: strings.Repeat("x", 2000)})
	require.Len(t, errs, 1)
	assert.Equal(t, "reason", errs[0].Field)
}

// The checks that ActionREST.Create makes on the request body before it
// touches storage: a nil store proves that nothing is read or written.
func TestActionCreateRejectsBadBodies(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		a      action
		body   runtime.Object
		wantFn func(error) bool
	}{
		{name: "promote body names another Rollout", a: promoteAction{},
			body: &rollout.RolloutPromote{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, wantFn: apierrors.IsBadRequest},
		{name: "pause body names another Rollout", a: pauseAction{},
			body: &rollout.RolloutPause{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, wantFn: apierrors.IsBadRequest},
		{name: "promote to step 0", a: promoteAction{},
			body: &rollout.RolloutPromote{ToStepIndex: ptr.To[int32](0)}, wantFn: apierrors.IsInvalid},
		{name: "promote to a step and full", a: promoteAction{},
			body: &rollout.RolloutPromote{ToStepIndex: ptr.To[int32](2), Full: true}, wantFn: apierrors.IsInvalid},
		{name: "negative precondition step", a: resumeAction{},
			body: &rollout.RolloutResume{Preconditions: &rollout.ActionPreconditions{StepIndex: ptr.To[int32](-1)}}, wantFn: apierrors.IsInvalid},
		{name: "abort reason too long", a: abortAction{},
			body: &rollout.RolloutAbort{Reason: strings.Repeat("x", 2000)}, wantFn: apierrors.IsInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newActionREST(nil, "test", tc.a, nil, nil, nil).Create(ctx, "web", tc.body, nil, &metav1.CreateOptions{})
			require.Error(t, err)
			assert.True(t, tc.wantFn(err), "got %v", err)
		})
	}
}
