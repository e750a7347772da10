package workload

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func rollingDeployment() *appsv1.Deployment {
	surge, unavailable := intstr.FromString("30%"), intstr.FromInt32(1)
	replicas := int32(4)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Annotations: map[string]string{"keep": "me"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
		},
	}
}

func TestHoldDeploymentRoundTrip(t *testing.T) {
	original := rollingDeployment()
	d := original.DeepCopy()
	changed, err := HoldDeployment(original, d)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.True(t, d.Spec.Paused)
	assert.Equal(t, appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, d.Spec.Strategy)
	assert.True(t, IsHeld(d))

	var saved DeploymentOriginal
	require.NoError(t, json.Unmarshal([]byte(d.Annotations[HoldAnnotation]), &saved))
	assert.Equal(t, original.Spec.Strategy, saved.Strategy)
	assert.False(t, saved.Paused)

	// Holding again changes nothing.
	again := d.DeepCopy()
	changed, err = HoldDeployment(d, again)
	require.NoError(t, err)
	assert.False(t, changed)

	assert.True(t, ReleaseDeployment(d))
	assert.Equal(t, original.Spec, d.Spec, "the release restores exactly what the hold replaced")
	assert.Equal(t, map[string]string{"keep": "me"}, d.Annotations)
	assert.False(t, ReleaseDeployment(d), "releasing twice is a no-op")
}

// TestHoldDeploymentKeepsStableReplicaSet: a revisionHistoryLimit below 2 is
// raised while held (a paused Deployment deletes emptied old ReplicaSets
// beyond it, the stable one among them) and restored exactly on release; a
// user's change of the limit while held becomes the new original.
func TestHoldDeploymentKeepsStableReplicaSet(t *testing.T) {
	limit := func(n int32) *int32 { return &n }
	tests := []struct {
		name          string
		original      *int32
		userWhileHeld *int32 // nil: no change while held
		wantHeld      *int32
		wantReleased  *int32
	}{
		{name: "unset stays unset", original: nil, wantHeld: nil, wantReleased: nil},
		{name: "0 raised, then restored", original: limit(0), wantHeld: limit(2), wantReleased: limit(0)},
		{name: "1 raised, then restored", original: limit(1), wantHeld: limit(2), wantReleased: limit(1)},
		{name: "5 left alone", original: limit(5), wantHeld: limit(5), wantReleased: limit(5)},
		{name: "user sets 0 while held", original: limit(5), userWhileHeld: limit(0), wantHeld: limit(2), wantReleased: limit(0)},
		{name: "user sets 7 while held", original: limit(0), userWhileHeld: limit(7), wantHeld: limit(7), wantReleased: limit(7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			original := rollingDeployment()
			original.Spec.RevisionHistoryLimit = tt.original
			d := original.DeepCopy()
			_, err := HoldDeployment(original, d)
			require.NoError(t, err)
			if tt.userWhileHeld != nil {
				old := d.DeepCopy()
				d.Spec.RevisionHistoryLimit = tt.userWhileHeld
				_, err = HoldDeployment(old, d)
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantHeld, d.Spec.RevisionHistoryLimit, "while held")
			again := d.DeepCopy()
			changed, err := HoldDeployment(d, again)
			require.NoError(t, err)
			assert.False(t, changed, "holding again changes nothing")
			require.True(t, ReleaseDeployment(d))
			assert.Equal(t, tt.wantReleased, d.Spec.RevisionHistoryLimit, "after release")
		})
	}
}

func TestHoldDeploymentKeepsUserIntent(t *testing.T) {
	original := rollingDeployment()
	original.Spec.Paused = true // the user had paused it before changing the image
	held := original.DeepCopy()
	_, err := HoldDeployment(original, held)
	require.NoError(t, err)

	// Mid-release the user applies a manifest that unpauses it and changes maxSurge.
	update := held.DeepCopy()
	update.Spec.Paused = false
	surge := intstr.FromInt32(5)
	update.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge}}
	changed, err := HoldDeployment(held, update)
	require.NoError(t, err)
	assert.True(t, changed, "the hold is put back")
	assert.True(t, update.Spec.Paused)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, update.Spec.Strategy.Type)
	orig := OriginalOfDeployment(update)
	assert.False(t, orig.Paused, "the user's new paused value is what the release restores")
	assert.Equal(t, int32(5), orig.Strategy.RollingUpdate.MaxSurge.IntVal)

	// The annotation dropped by a replace: the old object's record is used.
	replaced := original.DeepCopy()
	replaced.Annotations = nil
	replaced.Spec.Template.Spec.Containers = []corev1.Container{{Name: "c", Image: "v3"}}
	changed, err = HoldDeployment(held, replaced)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.True(t, OriginalOfDeployment(replaced).Paused)
}

// TestHoldPassesTheControllersOwnHold: the controller holding a workload
// again goes through the webhook too; its record must survive.
func TestHoldPassesTheControllersOwnHold(t *testing.T) {
	released := rollingDeployment()
	held := released.DeepCopy()
	_, err := HoldDeployment(nil, held)
	require.NoError(t, err)
	admitted := held.DeepCopy()
	changed, err := HoldDeployment(released, admitted)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, released.Spec.Strategy, OriginalOfDeployment(admitted).Strategy)
	assert.False(t, OriginalOfDeployment(admitted).Paused)

	unheldDS := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}}}
	heldDS := unheldDS.DeepCopy()
	_, err = HoldDaemonSet(nil, heldDS)
	require.NoError(t, err)
	changed, err = HoldDaemonSet(unheldDS, heldDS)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, appsv1.RollingUpdateDaemonSetStrategyType, OriginalOfDaemonSet(heldDS).UpdateStrategy.Type)

	replicas := int32(2)
	unheldSts := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: &replicas, UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}}}
	heldSts := unheldSts.DeepCopy()
	_, err = HoldStatefulSet(nil, heldSts, true)
	require.NoError(t, err)
	changed, err = HoldStatefulSet(unheldSts, heldSts, false)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, appsv1.OnDeleteStatefulSetStrategyType, OriginalOfStatefulSet(heldSts).UpdateStrategy.Type)
}

func TestHoldDeploymentIgnoresUnreadableRecord(t *testing.T) {
	d := rollingDeployment()
	d.Annotations[HoldAnnotation] = "{not json"
	changed, err := HoldDeployment(nil, d)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type)
}

func TestHoldStatefulSet(t *testing.T) {
	replicas := int32(5)
	partition := int32(2)
	maxUnavailable := intstr.FromInt32(2)
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &partition, MaxUnavailable: &maxUnavailable},
			},
		},
	}
	original := s.DeepCopy()
	held := s.DeepCopy()
	changed, err := HoldStatefulSet(original, held, true)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, int32(5), HeldPartition(held), "partition = replicas")
	assert.Equal(t, int32(2), held.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntVal)

	// The controller lowers the partition: the hold leaves that alone.
	lowered := held.DeepCopy()
	three := int32(3)
	lowered.Spec.UpdateStrategy.RollingUpdate.Partition = &three
	changed, err = HoldStatefulSet(held, lowered, false)
	require.NoError(t, err)
	assert.False(t, changed)

	// A user switching to OnDelete mid-release is held back, partition kept.
	onDelete := lowered.DeepCopy()
	onDelete.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	changed, err = HoldStatefulSet(lowered, onDelete, false)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, int32(3), HeldPartition(onDelete))
	assert.Equal(t, appsv1.OnDeleteStatefulSetStrategyType, OriginalOfStatefulSet(onDelete).UpdateStrategy.Type)

	// A new revision starts the partition over.
	restarted := lowered.DeepCopy()
	changed, err = HoldStatefulSet(lowered, restarted, true)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, int32(5), HeldPartition(restarted))

	assert.True(t, ReleaseStatefulSet(restarted))
	assert.Equal(t, original.Spec.UpdateStrategy, restarted.Spec.UpdateStrategy)
	assert.False(t, IsHeld(restarted))
}

func TestHoldDaemonSet(t *testing.T) {
	unavailable := intstr.FromString("50%")
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
			Type:          appsv1.RollingUpdateDaemonSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &unavailable},
		}},
	}
	original := ds.DeepCopy()
	changed, err := HoldDaemonSet(original, ds)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, appsv1.OnDeleteDaemonSetStrategyType, ds.Spec.UpdateStrategy.Type)
	assert.Nil(t, ds.Spec.UpdateStrategy.RollingUpdate)
	assert.Equal(t, original.Spec.UpdateStrategy, OriginalOfDaemonSet(ds).UpdateStrategy)
	assert.True(t, ReleaseDaemonSet(ds))
	assert.Equal(t, original.Spec.UpdateStrategy, ds.Spec.UpdateStrategy)
}

func TestEqualIgnoreHashAndComputeHash(t *testing.T) {
	a := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Image: "v1"}}}}
	b := *a.DeepCopy()
	b.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "abc"
	assert.True(t, EqualIgnoreHash(&a, &b))
	b.Spec.Containers[0].Image = "v2"
	assert.False(t, EqualIgnoreHash(&a, &b))

	h1 := ComputeHash(&a, nil)
	assert.Equal(t, h1, ComputeHash(a.DeepCopy(), nil), "deterministic")
	one := int32(1)
	assert.NotEqual(t, h1, ComputeHash(&a, &one), "the collision count salts the hash")
	assert.NotEqual(t, h1, ComputeHash(&b, nil))
}
