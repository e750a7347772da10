package apiserver

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	ac "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/applyconfiguration/rollout/v1beta1"
)

// aliceSpec is the whole release plan as the team's GitOps tool applies it.
func aliceSpec(deadline int32) *ac.RolloutSpecApplyConfiguration {
	return ac.RolloutSpec().
		WithWorkloadRef(ac.ObjectRef().WithAPIVersion("apps/v1").WithKind("Deployment").WithName("web")).
		WithProgressDeadlineSeconds(deadline).
		WithStrategy(ac.RolloutStrategy().WithCanary(ac.CanaryStrategy().
			WithSteps(
				ac.CanaryStep().WithReplicas(intstr.FromString("20%")).WithTraffic("20%"),
				ac.CanaryStep().WithReplicas(intstr.FromString("100%")),
			).
			WithTrafficRoutings(ac.TrafficRoutingRef().WithService("web").
				WithIngress(ac.IngressTrafficRouting().WithName("web")))))
}

// managersOf returns the field managers of a Rollout, by operation.
func managersOf(r *v1beta1.Rollout) map[string]string {
	out := map[string]string{}
	for _, m := range r.ManagedFields {
		key := m.Manager
		if m.Subresource != "" {
			key += "/" + m.Subresource
		}
		out[key] = string(m.Operation)
	}
	return out
}

func ownsField(r *v1beta1.Rollout, manager, field string) bool {
	for _, m := range r.ManagedFields {
		if m.Manager == manager && m.FieldsV1 != nil && strings.Contains(string(m.FieldsV1.Raw), field) {
			return true
		}
	}
	return false
}

// Server-side apply: two managers that set the same field to different
// values conflict (409) until one forces; the controller applying status
// never conflicts with the spec's owner, because spec and status are reset
// for each other's writers.
func TestServerSideApply(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	aliceOpts := metav1.ApplyOptions{FieldManager: "alice"}

	// Alice applies the plan; the Rollout is created.
	created, err := rollouts(ns).Apply(ctx, ac.Rollout("web", ns).WithSpec(aliceSpec(600)), aliceOpts)
	require.NoError(t, err)
	assert.Equal(t, int32(600), *created.Spec.ProgressDeadlineSeconds)
	assert.Equal(t, map[string]string{"alice": "Apply"}, managersOf(created))

	// Re-applying the same configuration is a no-op.
	again, err := rollouts(ns).Apply(ctx, ac.Rollout("web", ns).WithSpec(aliceSpec(600)), aliceOpts)
	require.NoError(t, err)
	assert.Equal(t, created.ResourceVersion, again.ResourceVersion)

	// Bob sets the deadline Alice owns to another value: conflict, nothing stored.
	bob := ac.Rollout("web", ns).WithSpec(ac.RolloutSpec().WithProgressDeadlineSeconds(300))
	_, err = rollouts(ns).Apply(ctx, bob, metav1.ApplyOptions{FieldManager: "bob"})
	require.Error(t, err)
	assert.True(t, apierrors.IsConflict(err), "want 409, got %v", err)
	assert.Contains(t, err.Error(), `conflict with "alice"`)
	assert.Contains(t, err.Error(), ".spec.progressDeadlineSeconds")
	unchanged, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(600), *unchanged.Spec.ProgressDeadlineSeconds)

	// Bob forces: his value wins and he takes the field over.
	forced, err := rollouts(ns).Apply(ctx, bob, metav1.ApplyOptions{FieldManager: "bob", Force: true})
	require.NoError(t, err)
	assert.Equal(t, int32(300), *forced.Spec.ProgressDeadlineSeconds)
	assert.Equal(t, int64(2), forced.Generation)
	assert.True(t, ownsField(forced, "bob", "f:progressDeadlineSeconds"))
	assert.False(t, ownsField(forced, "alice", "f:progressDeadlineSeconds"))
	assert.True(t, ownsField(forced, "alice", "f:workloadRef"), "alice keeps the rest of the spec")

	// Now Alice's unchanged configuration conflicts with Bob.
	_, err = rollouts(ns).Apply(ctx, ac.Rollout("web", ns).WithSpec(aliceSpec(600)), aliceOpts)
	assert.True(t, apierrors.IsConflict(err), "want 409, got %v", err)
	assert.Contains(t, err.Error(), `conflict with "bob"`)

	// The controller applies status. The spec field it sends along is
	// dropped (status writes cannot touch the spec), so it conflicts with no one.
	status := ac.Rollout("web", ns).
		WithSpec(ac.RolloutSpec().WithProgressDeadlineSeconds(1)).
		WithStatus(ac.RolloutStatus().
			WithObservedGeneration(2).
			WithPhase(v1beta1.RolloutPhaseProgressing).
			WithCurrentStepIndex(1).
			WithCurrentStepState(v1beta1.CanaryStepStatePaused).
			WithMessage("waiting at step 1"))
	withStatus, err := rollouts(ns).ApplyStatus(ctx, status, metav1.ApplyOptions{FieldManager: "controller"})
	require.NoError(t, err)
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, withStatus.Status.Phase)
	assert.Equal(t, int32(1), withStatus.Status.CurrentStepIndex)
	assert.Equal(t, int32(300), *withStatus.Spec.ProgressDeadlineSeconds, "a status apply cannot change the spec")
	assert.Equal(t, int64(2), withStatus.Generation)
	assert.Equal(t, "Apply", managersOf(withStatus)["controller/status"])
	assert.False(t, ownsField(withStatus, "controller", "f:spec"), "the controller owns no spec field")

	// Alice applies her plan again without the contested deadline: no
	// conflict with the controller, and the status stays as the controller set it.
	noDeadline := aliceSpec(0)
	noDeadline.ProgressDeadlineSeconds = nil
	afterAlice, err := rollouts(ns).Apply(ctx, ac.Rollout("web", ns).WithSpec(noDeadline), aliceOpts)
	require.NoError(t, err)
	assert.Equal(t, withStatus.Status, afterAlice.Status)

	// And a status sent to the main resource by a spec manager is dropped.
	sneaky := ac.Rollout("web", ns).WithStatus(ac.RolloutStatus().WithPhase(v1beta1.RolloutPhaseHealthy))
	afterSneaky, err := rollouts(ns).Apply(ctx, sneaky, metav1.ApplyOptions{FieldManager: "sneaky"})
	require.NoError(t, err)
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, afterSneaky.Status.Phase)
}

// Apply works with a raw PATCH (application/apply-patch+yaml) in either
// version, and field ownership holds across versions: a v1alpha1 apply of a
// field a v1beta1 manager owns conflicts just the same.
func TestServerSideApplyRawAcrossVersions(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	beta := `
apiVersion: rollout.kruise.io/v1beta1
kind: Rollout
metadata:
  name: api
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  progressDeadlineSeconds: 120
  strategy:
    canary:
      steps:
      - replicas: 1
      - replicas: 100%
`
	_, err := rollouts(ns).Patch(ctx, "api", types.ApplyPatchType, []byte(beta), metav1.PatchOptions{FieldManager: "gitops"})
	require.NoError(t, err)

	alpha := `
apiVersion: rollout.kruise.io/v1alpha1
kind: Rollout
metadata:
  name: api
spec:
  progressDeadlineSeconds: 60
`
	alphaClient := server.Client.RolloutV1alpha1().Rollouts(ns)
	_, err = alphaClient.Patch(ctx, "api", types.ApplyPatchType, []byte(alpha), metav1.PatchOptions{FieldManager: "oncall"})
	assert.True(t, apierrors.IsConflict(err), "want 409, got %v", err)

	force := true
	patched, err := alphaClient.Patch(ctx, "api", types.ApplyPatchType, []byte(alpha), metav1.PatchOptions{FieldManager: "oncall", Force: &force})
	require.NoError(t, err)
	assert.Equal(t, int32(60), *patched.Spec.ProgressDeadlineSeconds)
	require.NotNil(t, patched.Spec.ObjectRef.WorkloadRef)
	assert.Equal(t, "api", patched.Spec.ObjectRef.WorkloadRef.Name)

	got, err := rollouts(ns).Get(ctx, "api", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(60), *got.Spec.ProgressDeadlineSeconds)
	assert.Len(t, got.Spec.Strategy.Canary.Steps, 2)
}
