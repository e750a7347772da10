package apiserver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Users own the spec, the controller owns the status: a write to the main
// resource cannot change status, a write to rollouts/status cannot change the
// spec or the user's labels, and only a spec change bumps the generation.
func TestSpecAndStatusAreWrittenSeparately(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	created := create(ctx, t, ns, newRollout("web", "web"))
	require.Equal(t, int64(1), created.Generation)

	// The controller writes status. The spec and label changes it smuggles
	// along are dropped; the generation stays.
	r := created.DeepCopy()
	r.Status = atStep(1, v1beta1.CanaryStepStatePaused)
	r.Spec.Strategy.Paused = true
	r.Labels["app"] = "hijacked"
	afterStatus, err := rollouts(ns).UpdateStatus(ctx, r, metav1.UpdateOptions{})
	require.NoError(t, err)
	assert.Equal(t, atStep(1, v1beta1.CanaryStepStatePaused), afterStatus.Status)
	assert.Equal(t, created.Spec, afterStatus.Spec, "a status write cannot change the spec")
	assert.Equal(t, "web", afterStatus.Labels["app"], "a status write cannot change labels")
	assert.Equal(t, int64(1), afterStatus.Generation, "a status write does not bump the generation")

	// A user updates the spec from a stale copy with no status: the stored
	// status stays, the generation moves to 2.
	u := created.DeepCopy()
	u.ResourceVersion = afterStatus.ResourceVersion
	u.Status = v1beta1.RolloutStatus{Phase: v1beta1.RolloutPhaseHealthy}
	u.Spec.Strategy.Canary.Steps[1].Pause.Duration = ptr.To[int32](30)
	afterSpec, err := rollouts(ns).Update(ctx, u, metav1.UpdateOptions{})
	require.NoError(t, err)
	assert.Equal(t, ptr.To[int32](30), afterSpec.Spec.Strategy.Canary.Steps[1].Pause.Duration)
	assert.Equal(t, afterStatus.Status, afterSpec.Status, "a spec write cannot change the status")
	assert.Equal(t, int64(2), afterSpec.Generation)

	// Metadata-only and no-op updates keep the generation.
	afterSpec.Annotations = map[string]string{"note": "metadata only"}
	afterMeta, err := rollouts(ns).Update(ctx, afterSpec, metav1.UpdateOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), afterMeta.Generation)
	afterNoop, err := rollouts(ns).Update(ctx, afterMeta, metav1.UpdateOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), afterNoop.Generation)
	assert.Equal(t, afterMeta.ResourceVersion, afterNoop.ResourceVersion, "a no-op update writes nothing")

	// The controller records that it saw generation 2.
	afterNoop.Status.ObservedGeneration = afterNoop.Generation
	observed, err := rollouts(ns).UpdateStatus(ctx, afterNoop, metav1.UpdateOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), observed.Status.ObservedGeneration)
	assert.Equal(t, int64(2), observed.Generation)
}

// Patches follow the same split: a merge patch of the main resource that
// touches status only changes nothing, one of rollouts/status changes only
// status.
func TestPatchesRespectTheSubresourceSplit(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	created := create(ctx, t, ns, newRollout("web", "web"))

	p, err := rollouts(ns).Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"status":{"phase":"Healthy"},"spec":{"disabled":true}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	assert.True(t, p.Spec.Disabled)
	assert.Empty(t, p.Status.Phase, "status in a main-resource patch is ignored")
	assert.Equal(t, int64(2), p.Generation)

	s, err := rollouts(ns).Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"status":{"phase":"Disabled","message":"disabled by spec"},"spec":{"disabled":false}}`), metav1.PatchOptions{}, "status")
	require.NoError(t, err)
	assert.Equal(t, v1beta1.RolloutPhaseDisabled, s.Status.Phase)
	assert.Equal(t, "disabled by spec", s.Status.Message)
	assert.True(t, s.Spec.Disabled, "spec in a status patch is ignored")
	assert.Equal(t, int64(2), s.Generation)

	got, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, created.UID, got.UID)
	assert.Equal(t, s.ResourceVersion, got.ResourceVersion)

	// GET on the status subresource returns the whole Rollout.
	var viaStatus v1beta1.Rollout
	require.NoError(t, server.Client.RolloutV1beta1().RESTClient().Get().
		Namespace(ns).Resource("rollouts").Name("web").SubResource("status").Do(ctx).Into(&viaStatus))
	assert.Equal(t, got.Status, viaStatus.Status)
	assert.Equal(t, got.Spec, viaStatus.Spec)
}
