// Package releasers picks the workload mechanics (a workload.Releaser) that
// release a Rollout's workload: one decision, used by the controller and by
// the step machine's tests alike.
package releasers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload/daemonset"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload/deployment"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload/statefulset"
)

// For returns the function that picks the releaser of a Rollout: by the
// workload's kind, and for a Deployment by the strategy (blue-green, an
// extra canary Deployment, or in place). Admission refuses the combinations
// it reports as errors; the errors cover Rollouts stored before that.
func For(deps *workload.Deps) func(ro *v1beta1.Rollout) (workload.Releaser, error) {
	inPlace := deployment.NewInPlace(deps)
	canary := deployment.NewCanary(deps)
	blueGreen := deployment.NewBlueGreen(deps)
	sts := statefulset.New(deps)
	ds := daemonset.New(deps)
	return func(ro *v1beta1.Rollout) (workload.Releaser, error) {
		ref := ro.Spec.WorkloadRef
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil || gv.Group != "apps" {
			return nil, fmt.Errorf("workloadRef %s %s %s is not supported: only apps/v1 Deployments, StatefulSets and DaemonSets are", ref.APIVersion, ref.Kind, ref.Name)
		}
		s := ro.Spec.Strategy
		if !workload.Releasable(ro) {
			return nil, fmt.Errorf("blueGreen releases Deployments only, not %s %s: use the canary strategy", ref.Kind, ref.Name) // the only strategy it refuses
		}
		switch ref.Kind {
		case v1beta1.KindDeployment:
			switch {
			case s.BlueGreen != nil:
				return blueGreen, nil
			case s.Canary != nil && s.Canary.EnableExtraWorkloadForCanary:
				return canary, nil
			}
			return inPlace, nil
		case v1beta1.KindStatefulSet:
			return sts, nil
		case v1beta1.KindDaemonSet:
			return ds, nil
		}
		return nil, fmt.Errorf("workloadRef kind %q is not supported: only Deployment, StatefulSet and DaemonSet are", ref.Kind)
	}
}
