package apiserver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	ac "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/applyconfiguration/rollout/v1beta1"
	rolloutregistry "github.com/rollout-apiserver/rollout-apiserver/pkg/registry/rollout"
)

// actions calls each action subresource with an empty body through the clientset.
var actions = map[string]func(ctx context.Context, ns, name string, opts metav1.CreateOptions) (*v1beta1.Rollout, error){
	"promote": func(ctx context.Context, ns, name string, opts metav1.CreateOptions) (*v1beta1.Rollout, error) {
		return rollouts(ns).Promote(ctx, name, &v1beta1.RolloutPromote{}, opts)
	},
	"pause": func(ctx context.Context, ns, name string, opts metav1.CreateOptions) (*v1beta1.Rollout, error) {
		return rollouts(ns).Pause(ctx, name, &v1beta1.RolloutPause{}, opts)
	},
	"resume": func(ctx context.Context, ns, name string, opts metav1.CreateOptions) (*v1beta1.Rollout, error) {
		return rollouts(ns).Resume(ctx, name, &v1beta1.RolloutResume{}, opts)
	},
	"abort": func(ctx context.Context, ns, name string, opts metav1.CreateOptions) (*v1beta1.Rollout, error) {
		return rollouts(ns).Abort(ctx, name, &v1beta1.RolloutAbort{}, opts)
	},
}

// Every action on a Rollout that does not exist is a 404.
func TestActionsOnAMissingRollout(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	for name, call := range actions {
		t.Run(name, func(t *testing.T) {
			_, err := call(ctx, ns, "nowhere", metav1.CreateOptions{})
			assert.True(t, apierrors.IsNotFound(err), "got %v", err)
		})
	}
}

// A body that names another Rollout than the URL is a 400, and changes nothing.
func TestActionBodyNamingAnotherRollout(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	created := create(ctx, t, ns, newRollout("web", "web"))
	setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))
	other := metav1.ObjectMeta{Name: "api"}

	_, err := rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{ObjectMeta: other}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsBadRequest(err), "promote: got %v", err)
	_, err = rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{ObjectMeta: other}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsBadRequest(err), "pause: got %v", err)
	_, err = rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{ObjectMeta: other}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsBadRequest(err), "resume: got %v", err)
	_, err = rollouts(ns).Abort(ctx, "web", &v1beta1.RolloutAbort{ObjectMeta: other}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsBadRequest(err), "abort: got %v", err)

	// The body may name the Rollout itself.
	_, err = rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{})
	assert.NoError(t, err)

	got, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, created.Spec, got.Spec)
}

// An action that makes no sense in the Rollout's state is a 409 Conflict
// whose message says why, and it changes nothing.
func TestActionsThatMakeNoSense(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("idle", "idle"))
	create(ctx, t, ns, newRollout("upgrading", "upgrading"))
	setStatus(ctx, t, ns, "upgrading", atStep(1, v1beta1.CanaryStepStateUpgrade))
	create(ctx, t, ns, newRollout("paused", "paused"))
	setStatus(ctx, t, ns, "paused", atStep(2, v1beta1.CanaryStepStatePaused))
	_, err := rollouts(ns).Pause(ctx, "paused", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err)

	cases := []struct {
		name, rollout, message string
		call                   func() error
	}{
		{"promote a Rollout with no release", "idle", "nothing to promote: the Rollout is Initial, not Progressing", func() error {
			_, err := rollouts(ns).Promote(ctx, "idle", &v1beta1.RolloutPromote{}, metav1.CreateOptions{})
			return err
		}},
		{"abort a Rollout with no release", "idle", "nothing to abort", func() error {
			_, err := rollouts(ns).Abort(ctx, "idle", &v1beta1.RolloutAbort{Reason: "why not"}, metav1.CreateOptions{})
			return err
		}},
		{"resume meant for another step", "paused", "precondition failed", func() error {
			_, err := rollouts(ns).Resume(ctx, "paused", &v1beta1.RolloutResume{Preconditions: &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](1)}}, metav1.CreateOptions{})
			return err
		}},
		{"promote a step that is not waiting", "upgrading", "step 1 is in state StepUpgrade, not waiting to be promoted", func() error {
			_, err := rollouts(ns).Promote(ctx, "upgrading", &v1beta1.RolloutPromote{}, metav1.CreateOptions{})
			return err
		}},
		{"promote a paused Rollout", "paused", "resume it before promoting", func() error {
			_, err := rollouts(ns).Promote(ctx, "paused", &v1beta1.RolloutPromote{Full: true}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := rollouts(ns).Get(ctx, tc.rollout, metav1.GetOptions{})
			require.NoError(t, err)
			err = tc.call()
			require.Error(t, err)
			assert.True(t, apierrors.IsConflict(err), "want 409, got %v", err)
			assert.Contains(t, err.Error(), tc.message)
			after, err := rollouts(ns).Get(ctx, tc.rollout, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, before.ResourceVersion, after.ResourceVersion, "a refused action writes nothing")
		})
	}
}

// The release waits at step 1; the user promotes it. The promote is recorded
// in status.pendingAction for the controller, with who asked. Sending it
// again changes nothing; a full promote on top of it is a conflict; an abort
// replaces it, because going back wins over going on.
func TestPromoteThenAbort(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	waiting := setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))

	promoted, err := rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{}, metav1.CreateOptions{})
	require.NoError(t, err)
	pending := promoted.Status.PendingAction
	require.NotNil(t, pending, "the promote waits in status.pendingAction")
	assert.Equal(t, v1beta1.RolloutActionPromote, pending.Type)
	assert.Equal(t, int32(1), pending.StepIndex)
	assert.False(t, pending.Full)
	assert.NotEmpty(t, pending.RequestedBy, "the user who promoted is recorded")
	assert.False(t, pending.RequestedAt.IsZero())
	assert.Equal(t, waiting.Spec, promoted.Spec, "a promote does not touch the spec")
	assert.Equal(t, waiting.Generation, promoted.Generation)
	stored, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, promoted, stored, "the returned Rollout is what was stored")

	again, err := rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{}, metav1.CreateOptions{})
	require.NoError(t, err, "the same promote again is accepted")
	assert.Equal(t, promoted.ResourceVersion, again.ResourceVersion, "and writes nothing")

	_, err = rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{Full: true}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsConflict(err), "another promote while one is pending: got %v", err)
	assert.Contains(t, err.Error(), "already pending")

	aborted, err := rollouts(ns).Abort(ctx, "web", &v1beta1.RolloutAbort{Reason: "p99 latency doubled"}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotNil(t, aborted.Status.PendingAction)
	assert.Equal(t, v1beta1.RolloutActionAbort, aborted.Status.PendingAction.Type)
	assert.Equal(t, "p99 latency doubled", aborted.Status.PendingAction.Reason)
	assert.Equal(t, int32(1), aborted.Status.PendingAction.StepIndex)

	_, err = rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsConflict(err), "promote while an abort is pending: got %v", err)
}

// promote with full finishes every remaining step, from any step state.
func TestPromoteFull(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	setStatus(ctx, t, ns, "web", atStep(2, v1beta1.CanaryStepStateTrafficRouting))

	promoted, err := rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{Full: true}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotNil(t, promoted.Status.PendingAction)
	assert.Equal(t, v1beta1.RolloutActionPromote, promoted.Status.PendingAction.Type)
	assert.True(t, promoted.Status.PendingAction.Full)
	assert.Equal(t, int32(2), promoted.Status.PendingAction.StepIndex)
}

// pause sets spec.strategy.paused (Kruise's own field) and so bumps the
// generation; resume clears it. Each sent again answers with the Rollout
// unchanged (same generation), like a repeated promote.
func TestPauseAndResume(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	before := setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStateUpgrade))

	paused, err := rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.True(t, paused.Spec.Strategy.Paused)
	assert.Equal(t, before.Generation+1, paused.Generation)
	assert.Equal(t, before.Status, paused.Status, "pause does not touch status")

	again, err := rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err, "pausing twice")
	assert.Equal(t, paused.Generation, again.Generation)

	resumed, err := rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.False(t, resumed.Spec.Strategy.Paused)
	assert.Equal(t, paused.Generation+1, resumed.Generation)

	again, err = rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{}, metav1.CreateOptions{})
	require.NoError(t, err, "resuming twice")
	assert.Equal(t, resumed.Generation, again.Generation)
}

// With dryRun=All every action answers with the Rollout as it would be, and
// stores nothing.
func TestActionDryRun(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	before := setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	wouldPromote, err := rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{}, dryRun)
	require.NoError(t, err)
	require.NotNil(t, wouldPromote.Status.PendingAction)
	assert.Equal(t, v1beta1.RolloutActionPromote, wouldPromote.Status.PendingAction.Type)

	wouldPause, err := rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{}, dryRun)
	require.NoError(t, err)
	assert.True(t, wouldPause.Spec.Strategy.Paused)
	assert.Equal(t, before.Generation+1, wouldPause.Generation)

	wouldAbort, err := rollouts(ns).Abort(ctx, "web", &v1beta1.RolloutAbort{}, dryRun)
	require.NoError(t, err)
	require.NotNil(t, wouldAbort.Status.PendingAction)
	assert.Equal(t, v1beta1.RolloutActionAbort, wouldAbort.Status.PendingAction.Type)

	after, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, before, after, "a dry run stores nothing")

	// A dry run is checked like a real request.
	_, err = rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{Preconditions: &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](9)}}, dryRun)
	assert.True(t, apierrors.IsConflict(err), "got %v", err)
}

// A body that is not JSON is a 400 Bad Request, sent with the raw REST client.
func TestActionMalformedBody(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))

	for _, body := range []string{`{"full": tru`, `not json at all`, `{"full": "yes"}`} {
		t.Run(body, func(t *testing.T) {
			err := server.Client.RolloutV1beta1().RESTClient().Post().
				Namespace(ns).Resource("rollouts").Name("web").SubResource("promote").
				SetHeader("Content-Type", "application/json").
				Body([]byte(body)).Do(ctx).Error()
			require.Error(t, err)
			assert.True(t, apierrors.IsBadRequest(err), "got %v", err)
		})
	}

	got, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Nil(t, got.Status.PendingAction)
}

// An abort's reason is limited in length (it is copied into status): 422.
func TestAbortReasonTooLong(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))
	long := make([]byte, 2000)
	for i := range long {
		long[i] = 'x'
	}
	_, err := rollouts(ns).Abort(ctx, "web", &v1beta1.RolloutAbort{Reason: string(long)}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Contains(t, causeFields(err), "reason")
}

// A Rollout that is being deleted (held by a finalizer) takes no more
// actions: 409, and the message says why.
func TestActionsOnADeletingRollout(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	r := newRollout("web", "web")
	r.Finalizers = []string{"example.com/hold"}
	create(ctx, t, ns, r)
	setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))
	require.NoError(t, rollouts(ns).Delete(ctx, "web", metav1.DeleteOptions{}))
	t.Cleanup(func() {
		// Release the finalizer so the namespace is left clean.
		if got, err := rollouts(ns).Get(context.Background(), "web", metav1.GetOptions{}); err == nil {
			got.Finalizers = nil
			_, _ = rollouts(ns).Update(context.Background(), got, metav1.UpdateOptions{})
		}
	})

	for name, call := range actions {
		t.Run(name, func(t *testing.T) {
			_, err := call(ctx, ns, "web", metav1.CreateOptions{})
			assert.True(t, apierrors.IsConflict(err), "want 409, got %v", err)
			assert.Contains(t, err.Error(), "being deleted")
		})
	}
}

// Pause and resume sent twice answer like the first: the Rollout, unchanged,
// with no new write.
func TestPauseResumeTwiceAreIdempotent(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "web"))
	first, err := rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err)
	second, err := rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.True(t, second.Spec.Strategy.Paused)
	assert.Equal(t, first.ResourceVersion, second.ResourceVersion, "the second pause writes nothing")

	first, err = rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{}, metav1.CreateOptions{})
	require.NoError(t, err)
	second, err = rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{}, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.False(t, second.Spec.Strategy.Paused)
	assert.Equal(t, first.ResourceVersion, second.ResourceVersion, "the second resume writes nothing")
}

// An action's write is recorded in metadata.managedFields like any update:
// under the request's field manager (or rollout-apiserver-ACTION when it
// names none), on the action's subresource, in the request's version, owning
// what the action wrote. So a later server-side apply of that field by
// someone else conflicts with the action's manager, as with a PATCH.
func TestActionsRecordManagedFields(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	_, err := rollouts(ns).Apply(ctx, ac.Rollout("web", ns).WithSpec(aliceSpec(600)), metav1.ApplyOptions{FieldManager: "alice"})
	require.NoError(t, err)

	paused, err := rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{FieldManager: "ops-oncall"})
	require.NoError(t, err)
	entry := managedEntry(t, paused, "ops-oncall")
	assert.Equal(t, metav1.ManagedFieldsOperationUpdate, entry.Operation)
	assert.Equal(t, "pause", entry.Subresource)
	assert.Equal(t, "rollout.kruise.io/v1beta1", entry.APIVersion)
	assert.JSONEq(t, `{"f:spec":{"f:strategy":{"f:paused":{}}}}`, string(entry.FieldsV1.Raw), "the pause owns spec.strategy.paused only")

	// Alice's plan says nothing about paused: re-applying it keeps the pause.
	// Setting paused herself conflicts with the action's manager.
	_, err = rollouts(ns).Apply(ctx, ac.Rollout("web", ns).WithSpec(aliceSpec(600).WithStrategy(
		aliceSpec(600).Strategy.WithPaused(false))), metav1.ApplyOptions{FieldManager: "alice"})
	require.True(t, apierrors.IsConflict(err), "want 409, got %v", err)
	assert.Contains(t, err.Error(), `conflict with "ops-oncall" with subresource "pause"`)

	// A resume clears paused (false is omitted): nobody owns it any more.
	resumed, err := rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{}, metav1.CreateOptions{FieldManager: "ops-oncall"})
	require.NoError(t, err)
	for _, m := range resumed.ManagedFields {
		assert.NotContains(t, string(m.FieldsV1.Raw), "f:paused", "manager %s still owns paused", m.Manager)
	}
	// An action that names no manager is recorded under its default one.
	paused, err = rollouts(ns).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err)
	entry = managedEntry(t, paused, rolloutregistry.DefaultActionFieldManager("pause"))
	assert.Equal(t, "pause", entry.Subresource)
	assert.True(t, ownsField(paused, rolloutregistry.DefaultActionFieldManager("pause"), "f:paused"))
	_, err = rollouts(ns).Resume(ctx, "web", &v1beta1.RolloutResume{}, metav1.CreateOptions{})
	require.NoError(t, err)

	// A promote owns the pending action it records in status.
	setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStatePaused))
	promoted, err := rollouts(ns).Promote(ctx, "web", &v1beta1.RolloutPromote{}, metav1.CreateOptions{FieldManager: "release-bot"})
	require.NoError(t, err)
	entry = managedEntry(t, promoted, "release-bot")
	assert.Equal(t, "promote", entry.Subresource)
	assert.Contains(t, string(entry.FieldsV1.Raw), `"f:pendingAction"`)

	// Through v1alpha1 the entry is in v1alpha1.
	alpha := server.Client.RolloutV1alpha1().Rollouts(ns)
	pausedAlpha, err := alpha.Pause(ctx, "web", &v1alpha1.RolloutPause{}, metav1.CreateOptions{FieldManager: "kruise-user"})
	require.NoError(t, err)
	found := false
	for _, m := range pausedAlpha.ManagedFields {
		if m.Manager == "kruise-user" {
			found = true
			assert.Equal(t, "rollout.kruise.io/v1alpha1", m.APIVersion)
			assert.Equal(t, "pause", m.Subresource)
		}
	}
	assert.True(t, found, "no managedFields entry of the v1alpha1 pause: %v", pausedAlpha.ManagedFields)
}

// managedEntry returns the managedFields entry of manager.
func managedEntry(t *testing.T, r *v1beta1.Rollout, manager string) metav1.ManagedFieldsEntry {
	t.Helper()
	for _, m := range r.ManagedFields {
		if m.Manager == manager {
			require.NotNil(t, m.FieldsV1, "entry of %s", manager)
			return m
		}
	}
	require.Failf(t, "no managedFields entry", "manager %s; entries: %v", manager, managersOf(r))
	return metav1.ManagedFieldsEntry{}
}
