package release

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Condition reasons this controller writes beside the API's own. They would
// sit better beside the API's reasons in pkg/apis/rollout/constants.go.
const (
	// ReasonCancelled is the Succeeded=False reason of a release that was
	// cancelled by reverting the workload to the stable revision.
	ReasonCancelled = "Cancelled"
	// ReasonDisabled is the Progressing=False reason of a disabled Rollout.
	ReasonDisabled = "Disabled"
	// ReasonWorkloadNotFound is the Progressing=False reason when the workload is gone.
	ReasonWorkloadNotFound = "WorkloadNotFound"
)

// Finalizer keeps a Rollout until its workload has been handed back to the
// workload's own strategy, so deleting a Rollout mid-release never leaves the
// workload held (paused, partitioned or OnDelete).
const Finalizer = "rollout.kruise.io/release"

// getCondition returns the condition of type t, nil if absent.
func getCondition(st *v1beta1.RolloutStatus, t v1beta1.RolloutConditionType) *v1beta1.RolloutCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition writes a condition. Its times move only when something in it
// changes, so a reconcile that changes nothing writes nothing.
func setCondition(st *v1beta1.RolloutStatus, t v1beta1.RolloutConditionType, status corev1.ConditionStatus, reason, message string, now metav1.Time) {
	c := getCondition(st, t)
	if c == nil {
		st.Conditions = append(st.Conditions, v1beta1.RolloutCondition{
			Type: t, Status: status, Reason: reason, Message: message,
			LastUpdateTime: now, LastTransitionTime: now,
		})
		return
	}
	if c.Status != status {
		c.LastTransitionTime = now
	}
	if c.Status != status || c.Reason != reason || c.Message != message {
		c.Status, c.Reason, c.Message, c.LastUpdateTime = status, reason, message, now
	}
}

func removeCondition(st *v1beta1.RolloutStatus, t v1beta1.RolloutConditionType) {
	kept := st.Conditions[:0]
	for _, c := range st.Conditions {
		if c.Type != t {
			kept = append(kept, c)
		}
	}
	st.Conditions = kept
	if len(st.Conditions) == 0 {
		st.Conditions = nil
	}
}

// progressingReason is the reason of the Progressing condition, "" if none.
func progressingReason(st *v1beta1.RolloutStatus) string {
	if c := getCondition(st, v1beta1.RolloutConditionProgressing); c != nil {
		return c.Reason
	}
	return ""
}

// mirrorStep copies the current step to the top-level fields that kubectl's
// columns show.
func mirrorStep(st *v1beta1.RolloutStatus) {
	if cs := st.CanaryStatus; cs != nil {
		st.CurrentStepIndex, st.CurrentStepState = cs.CurrentStepIndex, cs.CurrentStepState
		return
	}
	st.CurrentStepIndex, st.CurrentStepState = 0, ""
}

// nextStepIndex is the step a promote moves to, -1 at the last step (as in Kruise).
func nextStepIndex(current int32, steps int) int32 {
	if int(current) >= steps {
		return -1
	}
	return current + 1
}

// stepsHash fingerprints the steps a release was planned with, so that a
// change of the steps mid-release is noticed.
func stepsHash(ro *v1beta1.Rollout) string {
	raw, err := json.Marshal(ro.Spec.Strategy.Canary.Steps)
	if err != nil {
		// Plain data always encodes; an empty hash only forces a recompute.
		return ""
	}
	h := fnv.New64a()
	_, _ = h.Write(raw)
	return fmt.Sprintf("%016x", h.Sum64())
}

// hasFinalizer reports whether ro carries Finalizer.
func hasFinalizer(ro *v1beta1.Rollout) bool {
	for _, f := range ro.Finalizers {
		if f == Finalizer {
			return true
		}
	}
	return false
}

func withoutFinalizer(finalizers []string) []string {
	var kept []string
	for _, f := range finalizers {
		if f != Finalizer {
			kept = append(kept, f)
		}
	}
	return kept
}

// ceilSecond is t rounded up to a whole second, the precision status keeps.
func ceilSecond(t metav1.Time) *metav1.Time {
	c := t.Truncate(time.Second)
	if c.Before(t.Time) {
		c = c.Add(time.Second)
	}
	return &metav1.Time{Time: c}
}

// humanDuration prints a wait in whole seconds for messages.
func humanDuration(d time.Duration) string {
	return d.Round(time.Second).String()
}
