package install_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
)

// kruiseV1alpha1 is a v1alpha1 Rollout as Kruise users write it: weight-only
// steps, no rolling-style annotation, no enableExtraWorkloadForCanary.
func kruiseV1alpha1(kind string, annotations map[string]string) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: annotations},
		Spec: v1alpha1.RolloutSpec{
			ObjectRef: v1alpha1.ObjectRef{WorkloadRef: &v1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: kind, Name: "web"}},
			Strategy: v1alpha1.RolloutStrategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
				{TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](5)}},
				{TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](50)}, Replicas: ptr.To(intstr.FromInt32(3))},
				{TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](100)}},
			}}},
		},
	}
}

// decodeToHub does what the server does with a v1alpha1 request body:
// default, then convert to the hub.
func decodeToHub(t *testing.T, scheme *runtime.Scheme, in *v1alpha1.Rollout) *rollout.Rollout {
	t.Helper()
	in = in.DeepCopy()
	scheme.Default(in)
	hub := &rollout.Rollout{}
	require.NoError(t, scheme.Convert(in, hub, nil))
	return hub
}

// Kruise's v1alpha1 ConvertTo: a step with a weight and no replicas releases
// the weight's share of the pods; given replicas are kept.
func TestKruiseRuleWeightOnlyStepsDefaultReplicas(t *testing.T) {
	scheme, _ := newScheme()
	hub := decodeToHub(t, scheme, kruiseV1alpha1(rollout.KindDeployment, nil))
	steps := hub.Spec.Strategy.Canary.Steps
	require.Len(t, steps, 3)
	assert.Equal(t, ptr.To(intstr.FromString("5%")), steps[0].Replicas)
	assert.Equal(t, ptr.To("5%"), steps[0].Traffic)
	assert.Equal(t, ptr.To(intstr.FromInt32(3)), steps[1].Replicas, "given replicas win")
	assert.Equal(t, ptr.To(intstr.FromString("100%")), steps[2].Replicas)

	// The other direction: the hub's replicas and traffic read back as both
	// fields in v1alpha1, so the step is the same for Kruise's tools.
	out := &v1alpha1.Rollout{}
	require.NoError(t, scheme.Convert(hub, out, nil))
	assert.Equal(t, ptr.To[int32](5), out.Spec.Strategy.Canary.Steps[0].Weight)
	assert.Equal(t, ptr.To(intstr.FromString("5%")), out.Spec.Strategy.Canary.Steps[0].Replicas)
}

// Kruise's v1alpha1 ConvertTo: without rollouts.kruise.io/rolling-style:
// partition a Rollout releases through an extra canary workload (a Deployment
// is the only kind with that style here).
func TestKruiseRuleRollingStyle(t *testing.T) {
	scheme, _ := newScheme()
	cases := []struct {
		name        string
		kind        string
		annotations map[string]string
		explicit    *bool
		want        bool
	}{
		{name: "Deployment without the annotation is canary style", kind: rollout.KindDeployment, want: true},
		{name: "Kruise's partition annotation is in place", kind: rollout.KindDeployment,
			annotations: map[string]string{v1alpha1.KruiseRollingStyleAnnotation: "partition"}},
		{name: "the annotation value is case-insensitive", kind: rollout.KindDeployment,
			annotations: map[string]string{v1alpha1.KruiseRollingStyleAnnotation: "Partition"}},
		{name: "the annotation under our group's prefix too", kind: rollout.KindDeployment,
			annotations: map[string]string{v1alpha1.RollingStyleAnnotation: "partition"}},
		{name: "rolling-style canary is canary style", kind: rollout.KindDeployment,
			annotations: map[string]string{v1alpha1.KruiseRollingStyleAnnotation: "canary"}, want: true},
		{name: "a StatefulSet stays in place", kind: rollout.KindStatefulSet},
		{name: "an explicit false wins", kind: rollout.KindDeployment, explicit: ptr.To(false)},
		{name: "an explicit true wins over partition", kind: rollout.KindDeployment, explicit: ptr.To(true),
			annotations: map[string]string{v1alpha1.KruiseRollingStyleAnnotation: "partition"}, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := kruiseV1alpha1(tc.kind, tc.annotations)
			in.Spec.Strategy.Canary.EnableExtraWorkloadForCanary = tc.explicit
			hub := decodeToHub(t, scheme, in)
			assert.Equal(t, tc.want, hub.Spec.Strategy.Canary.EnableExtraWorkloadForCanary)
			assert.Equal(t, tc.annotations, hub.Annotations, "annotations are the user's, never rewritten")

			// The other direction always writes the field, so a v1alpha1
			// read-modify-write never flips the style through the default.
			out := &v1alpha1.Rollout{}
			require.NoError(t, scheme.Convert(hub, out, nil))
			assert.Equal(t, ptr.To(tc.want), out.Spec.Strategy.Canary.EnableExtraWorkloadForCanary)
			back := decodeToHub(t, scheme, out)
			assert.Equal(t, tc.want, back.Spec.Strategy.Canary.EnableExtraWorkloadForCanary)
		})
	}
}
