package release

import (
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// A blue-green release runs on the same step machine as a canary one: the
// steps, their states, pending actions, aborts and finalisation stages mean
// the same, and only the workload mechanics (the new revision comes up
// beside the old one, which keeps every replica until traffic has switched)
// and the order of the final stages differ. So the machine works on one
// shape: a pass reads a blue-green Rollout through releaseView, which shows
// spec.strategy.blueGreen as a canary strategy and status.blueGreenStatus
// as status.canaryStatus, and writes its status back in the blue-green
// shape (storedStatus). These two functions are the only place that knows
// the two shapes are one.

// isBlueGreen reports whether ro is released blue-green.
func isBlueGreen(ro *v1beta1.Rollout) bool {
	return ro.Spec.Strategy.BlueGreen != nil
}

// releaseView is ro as the step machine reads it: a blue-green Rollout
// gets a canary strategy with its steps, traffic routings, failure
// threshold and analysis, and its blue-green status as canary status. The
// blue-green strategy stays set, so what differs can still ask. ro itself
// is returned for a canary Rollout; a view must never be written.
func releaseView(ro *v1beta1.Rollout) *v1beta1.Rollout {
	bg := ro.Spec.Strategy.BlueGreen
	if bg == nil {
		return ro
	}
	view := ro.DeepCopy()
	view.Spec.Strategy.Canary = &v1beta1.CanaryStrategy{
		Steps:                        bg.Steps,
		TrafficRoutings:              bg.TrafficRoutings,
		FailureThreshold:             bg.FailureThreshold,
		DisableGenerateCanaryService: bg.DisableGenerateCanaryService,
		Analysis:                     bg.Analysis,
	}
	view.Status.CanaryStatus = view.Status.Progress()
	view.Status.BlueGreenStatus = nil
	return view
}

// storedStatus is the status a pass built on the view of ro, in the shape
// ro stores: blue-green progress goes back to status.blueGreenStatus.
func storedStatus(ro *v1beta1.Rollout, st *v1beta1.RolloutStatus) *v1beta1.RolloutStatus {
	if !isBlueGreen(ro) {
		return st
	}
	out := st.DeepCopy()
	out.BlueGreenStatus = v1beta1.BlueGreenStatusOf(out.CanaryStatus)
	out.CanaryStatus = nil
	return out
}
