package workload

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// defaultSurge and defaultUnavailable are the Deployment API's defaults, used
// when the saved strategy has no rolling parameters.
var (
	defaultSurge       = intstr.FromString("25%")
	defaultUnavailable = intstr.FromString("25%")
)

// StepReplicas is how many pods of the new revision a step asks for out of
// total. A percentage rounds up, as in Kruise, so that "1%" of a small
// workload still releases one pod; the result never exceeds total. A step
// without replicas (possible only through v1alpha1's weight-only steps)
// follows its traffic share, and 100% when it has none.
func StepReplicas(step *v1beta1.CanaryStep, total int32) (int32, error) {
	if total <= 0 {
		return 0, nil
	}
	value := step.Replicas
	if value == nil {
		pct := int32(100)
		if step.Traffic != nil {
			p, err := rollout.ParseTrafficPercent(*step.Traffic)
			if err != nil {
				return 0, fmt.Errorf("step without replicas: %w", err)
			}
			pct = p
		}
		v := intstr.FromString(fmt.Sprintf("%d%%", pct))
		value = &v
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(value, int(total), true)
	if err != nil {
		return 0, fmt.Errorf("step replicas %q: %w", value.String(), err)
	}
	return clamp(int32(n), 0, total), nil
}

// SurgeAndUnavailable resolves a rolling update's maxSurge (rounded up) and
// maxUnavailable (rounded down) against replicas, like the Deployment
// controller does. When both come out 0, maxUnavailable becomes 1, or no pod
// could ever be replaced.
func SurgeAndUnavailable(maxSurge, maxUnavailable *intstr.IntOrString, replicas int32) (surge, unavailable int32, err error) {
	if maxSurge == nil {
		maxSurge = &defaultSurge
	}
	if maxUnavailable == nil {
		maxUnavailable = &defaultUnavailable
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(maxSurge, int(replicas), true)
	if err != nil {
		return 0, 0, fmt.Errorf("maxSurge %q: %w", maxSurge.String(), err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, int(replicas), false)
	if err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable %q: %w", maxUnavailable.String(), err)
	}
	surge, unavailable = max(int32(s), 0), clamp(int32(u), 0, replicas)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable, nil
}

// FailureTolerance is how many of a batch's desired pods may be unready while
// the batch still counts as ready: failureThreshold scaled against the batch,
// rounded up. No threshold tolerates none.
func FailureTolerance(threshold *intstr.IntOrString, desired int32) int32 {
	if threshold == nil {
		return 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(threshold, int(desired), true)
	if err != nil || n < 0 {
		// Validation admits only counts and percentages; an unreadable value
		// tolerates nothing rather than letting a broken batch through.
		return 0
	}
	return int32(n)
}

// BatchReady reports whether a batch that wants desired new pods is done:
// enough new pods exist, all but tolerance of them are ready, and at least one
// is ready whenever any is wanted (so a threshold of 100% never passes a
// batch of which nothing works).
func BatchReady(desired, updated, updatedReady, tolerance int32) bool {
	if updated < desired {
		return false
	}
	if updatedReady+tolerance < desired {
		return false
	}
	return desired == 0 || updatedReady > 0
}

func clamp(v, lo, hi int32) int32 {
	return min(max(v, lo), hi)
}
