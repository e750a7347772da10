package rollout

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// newRollout is a valid three-step canary Rollout with no status: the shape
// a user creates. Tests change what they are about.
func newRollout(name string) *rollout.Rollout {
	return &rollout.Rollout{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Namespace:         "default",
			ResourceVersion:   "7",
			Generation:        3,
			CreationTimestamp: metav1.NewTime(time.Now().Add(-72 * time.Hour)),
			Labels:            map[string]string{"app": name},
			Annotations:       map[string]string{"owner": "team-a"},
			Finalizers:        []string{"example.com/keep"},
		},
		Spec: rollout.RolloutSpec{
			WorkloadRef: rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindDeployment, Name: name},
			Strategy: rollout.RolloutStrategy{Canary: &rollout.CanaryStrategy{
				Steps: []rollout.CanaryStep{
					{Replicas: ptr.To(intstr.FromString("20%")), TrafficRoutingStrategy: rollout.TrafficRoutingStrategy{Traffic: ptr.To("20%")}},
					{Replicas: ptr.To(intstr.FromString("50%")), TrafficRoutingStrategy: rollout.TrafficRoutingStrategy{
						Matches: []rollout.HttpRouteMatch{{Headers: []rollout.HTTPHeaderMatch{{Name: "X-Canary", Value: "1"}}}},
					}},
					{Replicas: ptr.To(intstr.FromString("100%"))},
				},
				TrafficRoutings: []rollout.TrafficRoutingRef{{
					Service: name,
					Ingress: &rollout.IngressTrafficRouting{Name: name},
				}},
			}},
		},
	}
}

// progressing puts r in a release at step (1-based) in state.
func progressing(r *rollout.Rollout, step int32, state rollout.CanaryStepState) *rollout.Rollout {
	r.Status.Phase = rollout.RolloutPhaseProgressing
	r.Status.CurrentStepIndex = step
	r.Status.CurrentStepState = state
	r.Status.CanaryStatus = &rollout.CanaryStatus{
		CommonStatus:   rollout.CommonStatus{CurrentStepIndex: step, CurrentStepState: state},
		CanaryRevision: "5d8f7c9b",
	}
	return r
}
