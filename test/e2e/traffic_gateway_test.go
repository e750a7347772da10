package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestTrafficGateway releases Deployments whose traffic goes through a Gateway API
// HTTPRoute (the real CRDs, installed by hack/local-up.sh), each scenario in its own
// namespace, all at once:
//
//	go test ./test/e2e/ -run 'TestTrafficGateway/(Canary|HeaderAbort)$' -v
func TestTrafficGateway(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Canary", trafficGatewayCanary},
		{"HeaderAbort", trafficGatewayHeaderAbort},
		{"Revert", trafficGatewayRevert},
		{"Disable", trafficGatewayDisable},
		{"MissingRoute", trafficGatewayMissingRoute},
		{"BlueGreen", trafficBlueGreenSwitch},
		{"BlueGreenAbortAtZero", trafficBlueGreenAbortAtZero},
		{"BlueGreenAbortAtFull", trafficBlueGreenAbortAtFull},
	}
	releaseEnvironment(t)
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() { t.Run(sc.name, sc.run) })
	}
	wg.Wait()
}

// routed is the state of the routing objects the scenario asserts.
type routed struct {
	route  *gwv1.HTTPRoute
	stable *corev1.Service
	canary *corev1.Service // nil when absent
}

// gatewayScenario is a Deployment "web" of 4 behind Service "web" and HTTPRoute "web".
type gatewayScenario struct {
	*scenario
	gw             gwclient.Interface
	originalRoute  *gwv1.HTTPRoute
	originalStable *corev1.Service
}

func newGatewayScenario(t *testing.T, steps []v1beta1.CanaryStep, createRoute bool, opts ...rolloutOption) *gatewayScenario {
	return newGatewayScenarioOf(newScenario(t), steps, createRoute, opts...)
}

// newGatewayScenarioOf sets up the Deployment, Service, HTTPRoute and Rollout (with opts,
// applied after the traffic routing is set) of a gateway scenario in sc's namespace.
func newGatewayScenarioOf(sc *scenario, steps []v1beta1.CanaryStep, createRoute bool, opts ...rolloutOption) *gatewayScenario {
	t := sc.t
	s := &gatewayScenario{scenario: sc}
	gw, err := gwclient.NewForConfig(s.env.c.Config)
	if err != nil {
		t.Fatalf("Gateway API client: %v", err)
	}
	s.gw = gw
	s.givenDeployment("web", 4)
	s.originalStable = s.givenStableService()
	if createRoute {
		ctx, cancel := s.ctx()
		defer cancel()
		hr, err := gw.GatewayV1().HTTPRoutes(s.ns).Create(ctx, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"team": "shop"}, Annotations: map[string]string{"owner": "shop-team"}},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
				Hostnames:       []gwv1.Hostname{"shop.example.com"},
				Rules: []gwv1.HTTPRouteRule{{
					Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}}},
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "web", Port: ptr.To(gwv1.PortNumber(80))}}}},
				}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create HTTPRoute web: %v", err)
		}
		s.originalRoute = hr
	}
	s.givenRollout(steps, append([]rolloutOption{func(ro *v1beta1.Rollout) {
		ro.Spec.Strategy.Canary.TrafficRoutings = []v1beta1.TrafficRoutingRef{{
			Service: "web", GracePeriodSeconds: 1, Gateway: &v1beta1.GatewayTrafficRouting{HTTPRouteName: ptr.To("web")},
		}}
	}}, opts...)...)
	return s
}

func (s *gatewayScenario) observe(ctx context.Context) (*routed, error) {
	r := &routed{}
	var err error
	if r.route, err = s.gw.GatewayV1().HTTPRoutes(s.ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
		return nil, err
	}
	if r.stable, r.canary, err = s.observeServices(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func webBackend(name string, weight *int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{
			Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")), Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(80)),
		},
		Weight: weight,
	}}
}

// expectRouted waits until the route's rules are exactly rules and the Services are pinned:
// the stable one to the stable revision, the canary one to the new revision.
func (s *gatewayScenario) expectRouted(what string, rules []gwv1.HTTPRouteRule) {
	s.t.Helper()
	ro := s.rollout()
	cs := ro.Status.Progress()
	s.eventually(waitTimeout, what, func(ctx context.Context) (bool, string) {
		r, err := s.observe(ctx)
		if err != nil {
			return false, err.Error()
		}
		got := r.route.Spec.Rules
		if !apiequality.Semantic.DeepEqual(got, rules) {
			return false, "rules = " + jsonString(got)
		}
		if ok, msg := servicesRouted(r.stable, r.canary, cs, true); !ok {
			return false, msg
		}
		return true, ""
	})
	s.logf("%s", what)
}

// expectRestored waits until the route and the stable Service are exactly as before the
// release (spec, labels, annotations) and the canary Service is gone.
func (s *gatewayScenario) expectRestored(what string) {
	s.t.Helper()
	s.eventually(waitTimeout, what, func(ctx context.Context) (bool, string) {
		r, err := s.observe(ctx)
		if err != nil {
			return false, err.Error()
		}
		return restoredState(s.originalRoute, s.originalStable, r)
	})
	s.logf("%s", what)
}

func restoredState(route *gwv1.HTTPRoute, stable *corev1.Service, r *routed) (bool, string) {
	switch {
	case !apiequality.Semantic.DeepEqual(r.route.Spec, route.Spec):
		return false, "route spec " + jsonString(r.route.Spec)
	case !apiequality.Semantic.DeepEqual(r.route.Labels, route.Labels) || !apiequality.Semantic.DeepEqual(r.route.Annotations, route.Annotations):
		return false, fmt.Sprintf("route labels %v annotations %v", r.route.Labels, r.route.Annotations)
	}
	return servicesRestored(stable, r.stable, r.canary)
}

func weightedRule(stable, canary int32) []gwv1.HTTPRouteRule {
	return []gwv1.HTTPRouteRule{{
		Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}}},
		BackendRefs: []gwv1.HTTPBackendRef{webBackend("web", ptr.To(stable)), webBackend("web-canary", ptr.To(canary))},
	}}
}

// trafficGatewayCanary: 5% → 50% → 100%, the route exact at every step, restored after.
func trafficGatewayCanary(t *testing.T) {
	s := newGatewayScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("50%", "50%"), trafficStep("100%", "100%")}, true)
	// Weight never ahead of ready canary pods: whenever the route gives the canary a share,
	// at least that share of the pods of the new revision is ready.
	stop := s.watchWeightBehindReadyPods()
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 5% to web-canary", weightedRule(95, 5))
	s.expectStatusTraffic(ptr.To[int32](5), 0)
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 2: 50% to web-canary", weightedRule(50, 50))
	s.expectStatusTraffic(ptr.To[int32](50), 0)
	s.promote()
	s.expectSucceeded()
	s.expectRestored("after success: route and Services as before, canary Service gone")
	stop()
	s.expectPods(pods{"app:v2": 4})
}

// watchWeightBehindReadyPods checks, until stopped, that the canary weight of the route
// never exceeds the ready share of the new revision's pods (rounded up to whole percent).
func (s *gatewayScenario) watchWeightBehindReadyPods() func() {
	return s.checkUntilStopped(100*time.Millisecond, func() bool {
		ctx, cancel := s.ctx()
		hr, err := s.gw.GatewayV1().HTTPRoutes(s.ns).Get(ctx, "web", metav1.GetOptions{})
		_, ready, desc, err2 := s.podDistribution(ctx, nil)
		cancel()
		if err != nil || err2 != nil {
			return true
		}
		var canary int32
		for _, rule := range hr.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if b.Name == "web-canary" {
					canary = max(canary, ptr.Deref(b.Weight, 0))
				}
			}
		}
		if limit := (int32(ready["app:v2"])*100 + s.replicas - 1) / s.replicas; canary > limit {
			s.t.Errorf("the route sends %d%% to the canary with only %d of %d pods of the new revision ready (%s)", canary, ready["app:v2"], s.replicas, desc)
			return false
		}
		return true
	})
}

// trafficGatewayHeaderAbort: a header-match step puts a rule ahead; abort puts the route
// back before the first canary pod goes.
func (s *gatewayScenario) headerStep() v1beta1.CanaryStep {
	st := step("1")
	st.Matches = []v1beta1.HttpRouteMatch{{Headers: []v1beta1.HTTPHeaderMatch{{Name: "x-canary", Value: "on"}}}}
	st.RequestHeaderModifier = &v1beta1.HTTPHeaderFilter{Set: []v1beta1.HTTPHeader{{Name: "x-release", Value: "canary"}}}
	return st
}

func trafficGatewayHeaderAbort(t *testing.T) {
	st := (&gatewayScenario{}).headerStep()
	s := newGatewayScenario(t, []v1beta1.CanaryStep{st, trafficStep("100%", "100%")}, true)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	canary := webBackend("web-canary", ptr.To[int32](1)) // the CRD defaults a backendRef's weight to 1
	canary.Filters = []gwv1.HTTPRouteFilter{{
		Type:                  gwv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-release", Value: "canary"}}},
	}}
	s.expectRouted("step 1: requests with x-canary: on to web-canary", []gwv1.HTTPRouteRule{
		{
			Matches: []gwv1.HTTPRouteMatch{{
				Path:    &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")},
				Headers: []gwv1.HTTPHeaderMatch{{Type: ptr.To(gwv1.HeaderMatchExact), Name: "x-canary", Value: "on"}},
			}},
			BackendRefs: []gwv1.HTTPBackendRef{canary},
		},
		{
			Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}}},
			BackendRefs: []gwv1.HTTPBackendRef{webBackend("web", ptr.To[int32](1))},
		},
	})
	s.expectStatusTraffic(nil, 1)

	// Abort: from now on, whenever fewer canary pods are alive than the step had, the
	// route must already be back to its original.
	stop := s.watchRouteBeforePods(1)
	s.abort("e2e: traffic first")
	s.waitPodsGone("app:v2")
	stop()
	s.expectRestored("after abort: route and Services as before")
	s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
}

// trafficGatewayRevert: reverting the workload to the stable revision restores routing.
func trafficGatewayRevert(t *testing.T) {
	s := newGatewayScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, true)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 5% to web-canary", weightedRule(95, 5))
	s.updateImage(stableImage)
	s.expectRestored("after the revert: route and Services as before")
	s.expectPods(pods{stableImage: 4})
}

// trafficGatewayDisable: disabling the Rollout mid-release restores routing.
func trafficGatewayDisable(t *testing.T) {
	s := newGatewayScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, true)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 5% to web-canary", weightedRule(95, 5))
	s.w.allowAll() // the Deployment's own strategy takes over
	s.updateRollout(func(ro *v1beta1.Rollout) { ro.Spec.Disabled = true })
	s.expectRestored("after disabling: route and Services as before")
	s.waitForPhase(v1beta1.RolloutPhaseDisabled, "")
}

// trafficGatewayMissingRoute: a Rollout naming an HTTPRoute that does not exist stops at
// the traffic state with a condition naming the route; creating the route lets it go on.
func trafficGatewayMissingRoute(t *testing.T) {
	s := newGatewayScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, false)
	s.updateImage("app:v2")
	s.eventually(waitTimeout, "condition TrafficRouting=False naming the HTTPRoute", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		c := condition(ro, v1beta1.RolloutConditionTrafficRouting)
		if c == nil {
			return false, rolloutSummary(ro)
		}
		want := fmt.Sprintf("HTTPRoute %s/web named in trafficRoutings does not exist", s.ns)
		return c.Status == corev1.ConditionFalse && strings.Contains(c.Message, want) && strings.Contains(ro.Status.Message, want), jsonString(c)
	})
	if st := s.rollout().Status.CanaryStatus.CurrentStepState; st != v1beta1.CanaryStepStateTrafficRouting {
		t.Errorf("step state %s, want %s while the route is missing", st, v1beta1.CanaryStepStateTrafficRouting)
	}
	// The abort path works without the route: traffic "back to stable" has nothing to do.
	s.abort("e2e: no route")
	s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
	s.expectPods(pods{stableImage: 4})
}

// watchRouteBeforePods checks, until stopped, that the route is back to its original
// whenever fewer than step pods of the new revision are alive.
func (s *gatewayScenario) watchRouteBeforePods(step int) func() {
	return s.checkUntilStopped(50*time.Millisecond, func() bool {
		ctx, cancel := s.ctx()
		live, _, desc, err := s.podDistribution(ctx, nil)
		var hr *gwv1.HTTPRoute
		if err == nil {
			hr, err = s.gw.GatewayV1().HTTPRoutes(s.ns).Get(ctx, "web", metav1.GetOptions{})
		}
		cancel()
		if err != nil || live["app:v2"] >= step {
			return true
		}
		if !apiequality.Semantic.DeepEqual(hr.Spec, s.originalRoute.Spec) {
			s.t.Errorf("a canary pod went (%s) while the route still sent to the canary: %s", desc, jsonString(hr.Spec.Rules))
			return false
		}
		return true
	})
}
