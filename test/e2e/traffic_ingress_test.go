package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestTrafficIngress releases Deployments whose traffic goes through an NGINX Ingress
// (networking.k8s.io/v1 is built in; no ingress controller runs, the objects are what is
// checked): a canary Ingress beside the untouched stable one, each scenario in its own
// namespace, all at once:
//
//	go test ./test/e2e/ -run 'TestTrafficIngress/(Canary|HeaderAbort)$' -v
func TestTrafficIngress(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Canary", trafficIngressCanary},
		{"HeaderAbort", trafficIngressHeaderAbort},
		{"Disable", trafficIngressDisable},
		{"Revert", trafficIngressRevert},
		{"Refused", trafficIngressRefused},
		{"MissingIngress", trafficIngressMissing},
	}
	releaseEnvironment(t)
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() { t.Run(sc.name, sc.run) })
	}
	wg.Wait()
}

const nginxPrefix = "nginx.ingress.kubernetes.io/"

// ingressScenario is a Deployment "web" of 4 behind Service "web" and Ingress "web".
type ingressScenario struct {
	*scenario
	original       *networkingv1.Ingress
	originalStable *corev1.Service
}

func ingressBackend(svc string) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}
}

func ingressPath(path, svc string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: path, PathType: ptr.To(networkingv1.PathTypePrefix), Backend: ingressBackend(svc)}
}

func ingressRules(paths ...networkingv1.HTTPIngressPath) []networkingv1.IngressRule {
	return []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{
		HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths},
	}}}
}

func newIngressScenario(t *testing.T, steps []v1beta1.CanaryStep, createIngress bool) *ingressScenario {
	s := &ingressScenario{scenario: newScenario(t)}
	s.givenDeployment("web", 4)
	s.originalStable = s.givenStableService()
	if createIngress {
		s.givenIngress()
	}
	s.givenRollout(steps, func(ro *v1beta1.Rollout) {
		ro.Spec.Strategy.Canary.TrafficRoutings = []v1beta1.TrafficRoutingRef{{
			Service: "web", GracePeriodSeconds: 1, Ingress: &v1beta1.IngressTrafficRouting{Name: "web"},
		}}
	})
	return s
}

// givenIngress creates the Ingress "web": class nginx, TLS, "/" to the Service "web" and
// "/static" to another Service.
func (s *ingressScenario) givenIngress() {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	ing, err := s.env.c.Client.NetworkingV1().Ingresses(s.ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"team": "shop"},
			Annotations: map[string]string{nginxPrefix + "proxy-body-size": "8m"}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "shop-tls"}},
			Rules:            ingressRules(ingressPath("/", "web"), ingressPath("/static", "static")),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("create Ingress web: %v", err)
	}
	s.original = ing
}

// ingresses reads the stable Ingress and the canary one (nil when absent).
func (s *ingressScenario) ingresses(ctx context.Context) (stable, canary *networkingv1.Ingress, err error) {
	client := s.env.c.Client.NetworkingV1().Ingresses(s.ns)
	if stable, err = client.Get(ctx, "web", metav1.GetOptions{}); err != nil {
		return nil, nil, err
	}
	canary, err = client.Get(ctx, "web-canary", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return stable, nil, nil
	}
	return stable, canary, err
}

// expectRouted waits until the canary Ingress carries exactly the NGINX annotations
// want (besides canary: "true"), sends the stable Service's path to web-canary with the
// stable Ingress's class and TLS, is owned by the Rollout, the stable Ingress is exactly
// as created, and the Services are pinned.
func (s *ingressScenario) expectRouted(what string, want map[string]string) {
	s.t.Helper()
	ro := s.rollout()
	annotations := map[string]string{nginxPrefix + "canary": "true"}
	for k, v := range want {
		annotations[nginxPrefix+k] = v
	}
	spec := networkingv1.IngressSpec{
		IngressClassName: ptr.To("nginx"),
		TLS:              s.original.Spec.TLS,
		Rules:            ingressRules(ingressPath("/", "web-canary")),
	}
	s.eventually(waitTimeout, what, func(ctx context.Context) (bool, string) {
		stable, canary, err := s.ingresses(ctx)
		if err != nil {
			return false, err.Error()
		}
		if ok, msg := sameObject("stable Ingress", s.original.Spec, stable.Spec, s.original, stable); !ok {
			return false, msg
		}
		if canary == nil {
			return false, "no canary Ingress"
		}
		if ok, msg := sameObject("canary Ingress", spec, canary.Spec,
			&metav1.ObjectMeta{Labels: map[string]string{"rollout.kruise.io/rollout": "web"}, Annotations: annotations}, canary); !ok {
			return false, msg
		}
		if !metav1.IsControlledBy(canary, ro) {
			return false, "canary Ingress not owned by the Rollout: " + jsonString(canary.OwnerReferences)
		}
		st, cn, err := s.observeServices(ctx)
		if err != nil {
			return false, err.Error()
		}
		return servicesRouted(st, cn, ro.Status.CanaryStatus, true)
	})
	s.logf("%s", what)
}

// expectRestored waits until the stable Ingress and Service are exactly as before the
// release and neither the canary Ingress nor the canary Service is left.
func (s *ingressScenario) expectRestored(what string) {
	s.t.Helper()
	s.eventually(waitTimeout, what, func(ctx context.Context) (bool, string) {
		stable, canary, err := s.ingresses(ctx)
		if err != nil {
			return false, err.Error()
		}
		if ok, msg := sameObject("stable Ingress", s.original.Spec, stable.Spec, s.original, stable); !ok {
			return false, msg
		}
		if canary != nil {
			return false, "canary Ingress still there"
		}
		st, cn, err := s.observeServices(ctx)
		if err != nil {
			return false, err.Error()
		}
		return servicesRestored(s.originalStable, st, cn)
	})
	s.logf("%s", what)
}

// trafficIngressCanary: 5% → 50% → 100%, the canary Ingress exact at every step, gone after.
func trafficIngressCanary(t *testing.T) {
	s := newIngressScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("50%", "50%"), trafficStep("100%", "100%")}, true)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: canary-weight 5", map[string]string{"canary-weight": "5"})
	s.expectStatusTraffic(ptr.To[int32](5), 0)
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 2: canary-weight 50", map[string]string{"canary-weight": "50"})
	s.promote()
	s.expectSucceeded()
	s.expectRestored("after success: stable Ingress and Services as before, canary Ingress and Service gone")
	s.expectPods(pods{"app:v2": 4})
}

// trafficIngressHeaderAbort: a header (exact) and cookie step, then a header pattern
// (regular expression) with a weight; abort puts traffic back before any canary pod goes.
func trafficIngressHeaderAbort(t *testing.T) {
	first := step("1")
	first.Matches = []v1beta1.HttpRouteMatch{
		{Headers: []v1beta1.HTTPHeaderMatch{{Name: "x-canary", Value: "on"}}},
		{Headers: []v1beta1.HTTPHeaderMatch{{Name: "canary-by-cookie", Value: "beta"}}},
	}
	second := trafficStep("2", "20%")
	second.Matches = []v1beta1.HttpRouteMatch{{Headers: []v1beta1.HTTPHeaderMatch{{Type: ptr.To("RegularExpression"), Name: "x-user", Value: "^qa-.*"}}}}
	s := newIngressScenario(t, []v1beta1.CanaryStep{first, second, trafficStep("100%", "100%")}, true)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: x-canary: on or cookie beta to web-canary", map[string]string{
		"canary-by-header": "x-canary", "canary-by-header-value": "on", "canary-by-cookie": "beta"})
	s.expectStatusTraffic(nil, 2)
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 2: x-user matching ^qa-.* and 20% to web-canary", map[string]string{
		"canary-by-header": "x-user", "canary-by-header-pattern": "^qa-.*", "canary-weight": "20"})

	// From the abort on, whenever fewer canary pods are alive than the step had, the
	// canary Ingress must already be gone.
	stop := s.checkUntilStopped(50*time.Millisecond, func() bool {
		ctx, cancel := s.ctx()
		defer cancel()
		live, _, desc, err := s.podDistribution(ctx, nil)
		if err != nil || live["app:v2"] >= 2 {
			return true
		}
		if _, canary, err := s.ingresses(ctx); err == nil && canary != nil {
			s.t.Errorf("a canary pod went (%s) while the canary Ingress still routed: %s", desc, jsonString(canary.Annotations))
			return false
		}
		return true
	})
	s.abort("e2e: traffic first")
	s.waitPodsGone("app:v2")
	stop()
	s.expectRestored("after abort: stable Ingress and Services as before")
	s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
}

// trafficIngressDisable: disabling the Rollout mid-release removes the canary Ingress.
func trafficIngressDisable(t *testing.T) {
	s := newIngressScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, true)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: canary-weight 5", map[string]string{"canary-weight": "5"})
	s.w.allowAll() // the Deployment's own strategy takes over
	s.updateRollout(func(ro *v1beta1.Rollout) { ro.Spec.Disabled = true })
	s.expectRestored("after disabling: stable Ingress and Services as before")
	s.waitForPhase(v1beta1.RolloutPhaseDisabled, "")
}

// trafficIngressRevert: reverting the workload to the stable revision removes the canary
// Ingress and restores the Services.
func trafficIngressRevert(t *testing.T) {
	s := newIngressScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, true)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: canary-weight 5", map[string]string{"canary-weight": "5"})
	s.updateImage(stableImage)
	s.expectRestored("after the revert: stable Ingress and Services as before")
	s.expectPods(pods{stableImage: 4})
}

// trafficIngressMissing: a Rollout naming an Ingress that does not exist stops at the
// traffic state with a condition naming it; creating the Ingress lets the release go on
// (the Ingress informer notices), and an abort then removes the canary Ingress.
func trafficIngressMissing(t *testing.T) {
	s := newIngressScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, false)
	s.updateImage("app:v2")
	want := fmt.Sprintf("Ingress %s/web named in trafficRoutings does not exist", s.ns)
	s.eventually(waitTimeout, "condition TrafficRouting=False naming the Ingress", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		c := condition(ro, v1beta1.RolloutConditionTrafficRouting)
		if c == nil {
			return false, rolloutSummary(ro)
		}
		return c.Status == corev1.ConditionFalse && strings.Contains(c.Message, want) &&
			ro.Status.CanaryStatus.CurrentStepState == v1beta1.CanaryStepStateTrafficRouting, jsonString(c)
	})
	s.givenIngress()
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1, once the Ingress exists: canary-weight 5", map[string]string{"canary-weight": "5"})
	s.abort("e2e: missing Ingress")
	s.expectRestored("after abort: stable Ingress and Services as before")
	s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
}

// trafficIngressRefused: what NGINX canary annotations cannot do is refused at admission
// with a 422 that names the field.
func trafficIngressRefused(t *testing.T) {
	s := newScenario(t)
	ctx, cancel := s.ctx()
	defer cancel()
	withModifier := trafficStep("1", "5%")
	withModifier.RequestHeaderModifier = &v1beta1.HTTPHeaderFilter{Set: []v1beta1.HTTPHeader{{Name: "x-release", Value: "canary"}}}
	withPath := step("1")
	withPath.Matches = []v1beta1.HttpRouteMatch{{Path: &v1beta1.HTTPPathMatch{Value: ptr.To("/api")}}}
	for _, tc := range []struct {
		name      string
		step      v1beta1.CanaryStep
		classType string
		field     string
	}{
		{"header modifier", withModifier, "", "spec.strategy.canary.steps[0].requestHeaderModifier"},
		{"path match", withPath, "", "spec.strategy.canary.steps[0].matches"},
		{"class", trafficStep("1", "5%"), "alb", "spec.strategy.canary.trafficRoutings[0].ingress.classType"},
	} {
		ro := &v1beta1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: s.ns},
			Spec: v1beta1.RolloutSpec{
				WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
				Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{
					Steps: []v1beta1.CanaryStep{tc.step},
					TrafficRoutings: []v1beta1.TrafficRoutingRef{{Service: "web",
						Ingress: &v1beta1.IngressTrafficRouting{Name: "web", ClassType: tc.classType}}},
				}},
			},
		}
		_, err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Create(ctx, ro, metav1.CreateOptions{})
		switch {
		case !apierrors.IsInvalid(err):
			t.Errorf("%s: got %v, want 422 Invalid", tc.name, err)
		case !strings.Contains(err.Error(), tc.field):
			t.Errorf("%s: %v does not name %s", tc.name, err, tc.field)
		default:
			t.Logf("%s: %v", tc.name, err)
		}
	}
}
