package e2e

import (
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Blue-green releases through a Gateway API HTTPRoute, run by TestTrafficGateway:
// the new revision comes up beside every old pod with 0% of the traffic, the steps
// switch traffic to it, and the old revision goes only once nothing routes to it.

// asBlueGreen turns the scenario's canary Rollout into a blue-green one with the same
// steps and traffic routing.
func asBlueGreen() rolloutOption {
	return func(ro *v1beta1.Rollout) {
		c := ro.Spec.Strategy.Canary
		ro.Spec.Strategy.Canary = nil
		ro.Spec.Strategy.BlueGreen = &v1beta1.BlueGreenStrategy{Steps: c.Steps, TrafficRoutings: c.TrafficRoutings}
	}
}

// blueGreenSteps: the new revision at full size with 0% of the traffic, then (waiting
// for promote) with all of it, then the release.
func blueGreenSteps() []v1beta1.CanaryStep {
	return []v1beta1.CanaryStep{trafficStep("100%", "0%"), trafficStep("100%", "100%"), trafficStep("100%", "100%")}
}

// trafficBlueGreenSwitch: 0% → 100% → released; the old pods get no request once they
// start to go.
func trafficBlueGreenSwitch(t *testing.T) {
	s := newGatewayScenario(t, blueGreenSteps(), true, asBlueGreen())
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: the new revision is up beside the old one with 0% of the traffic", weightedRule(100, 0))
	s.expectStatusTraffic(ptr.To[int32](0), 0)
	s.expectPods(pods{stableImage: 4, "app:v2": 4})
	stop := s.watchLeavingPodsGetNoTraffic()
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 2: all traffic to the new revision, the old one still at full size", weightedRule(0, 100))
	s.expectPods(pods{stableImage: 4, "app:v2": 4})
	s.promote()
	s.expectSucceeded()
	s.expectRestored("after the switch: route and Services as before, canary Service gone")
	stop()
	s.expectPods(pods{"app:v2": 4})
}

// trafficBlueGreenAbortAtZero: an abort before any traffic moved removes the new pods.
func trafficBlueGreenAbortAtZero(t *testing.T) {
	s := newGatewayScenario(t, blueGreenSteps(), true, asBlueGreen())
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 0% to the new revision", weightedRule(100, 0))
	stop := s.watchRouteBeforePods(4)
	s.abort("e2e: abort at 0%")
	s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
	stop()
	s.expectRestored("after the abort at 0%: route and Services as before")
	s.expectPods(pods{stableImage: 4})
}

// trafficBlueGreenAbortAtFull: an abort with all traffic on the new revision switches it
// back to the old one, which never lost a pod, before the first new pod goes.
func trafficBlueGreenAbortAtFull(t *testing.T) {
	s := newGatewayScenario(t, blueGreenSteps(), true, asBlueGreen())
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 2: all traffic to the new revision", weightedRule(0, 100))
	stop := s.watchRouteBeforePods(4)
	s.abort("e2e: abort at 100%")
	s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
	stop()
	s.expectRestored("after the abort at 100%: route and Services as before")
	s.expectPods(pods{stableImage: 4})
}

// watchLeavingPodsGetNoTraffic checks, until stopped, that whenever the old revision has
// fewer live pods than replicas, nothing routes to it: the route is back to its original
// (everything to the stable Service) and the stable Service selects only the new revision
// (or, once every old pod is gone, its own selector again).
func (s *gatewayScenario) watchLeavingPodsGetNoTraffic() func() {
	newHash := s.rollout().Status.Progress().PodTemplateHash
	return s.checkUntilStopped(50*time.Millisecond, func() bool {
		ctx, cancel := s.ctx()
		defer cancel()
		live, _, desc, err := s.podDistribution(ctx, nil)
		if err != nil || live[stableImage] >= int(s.replicas) {
			return true
		}
		hr, err := s.gw.GatewayV1().HTTPRoutes(s.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return true
		}
		svc, err := s.env.c.Client.CoreV1().Services(s.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return true
		}
		if !apiequality.Semantic.DeepEqual(hr.Spec, s.originalRoute.Spec) {
			s.t.Errorf("old pods are going (%s) while the route still splits traffic: %s", desc, jsonString(hr.Spec.Rules))
			return false
		}
		if hash, pinned := svc.Spec.Selector["pod-template-hash"]; live[stableImage] > 0 && (!pinned || hash != newHash) {
			s.t.Errorf("old pods are going (%s) while Service web still selects them: %v", desc, svc.Spec.Selector)
			return false
		}
		return true
	})
}
