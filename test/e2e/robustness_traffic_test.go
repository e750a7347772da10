package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestRobustnessKillMidTrafficChange kills rollout-apiserver with SIGKILL while a release
// changes a Gateway API HTTPRoute, and restarts it in place:
//
//  1. as step 2 (50%) enters StepTrafficRouting, i.e. with the step's weight recorded in
//     status and the route about to change;
//  2. once the route carries step 2's weight, within the grace period that follows (the
//     router's memory of the change is lost with the process);
//  3. during the finalisation's traffic stages, with the route being put back.
//
// After each restart the route must converge to what the recorded state asks for (50/50 at
// step 2; exactly the original route at the end) and nothing the release created (the
// canary Service) may be left.
func TestRobustnessKillMidTrafficChange(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, ns, rc := robKillableServer(ctx, t, c, "rob-traffic-"+rand.String(5))
	gw, err := gwclient.NewForConfig(c.Config)
	if err != nil {
		t.Fatalf("Gateway API client: %v", err)
	}

	const name, v1, v2 = "web", "fake-image:v1", "fake-image:v2"
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, robDeployment(ns, name, 10, v1), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Deployment: %v", err)
	}
	stable, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Service: %v", err)
	}
	route, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"owner": "shop-team"}},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: name, Port: ptr.To(gwv1.PortNumber(80))}}}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create HTTPRoute: %v", err)
	}
	robWaitDeploymentReady(t, c, ns, name, v1, 10, 60*time.Second)

	weighted := func(replicas, traffic string, pause *int32) v1beta1.CanaryStep {
		st := robStep(replicas, pause)
		st.Traffic = ptr.To(traffic)
		return st
	}
	ro := robRollout(ns, name, name, weighted("20%", "20%", robSeconds(1)), weighted("50%", "50%", nil), weighted("100%", "100%", nil))
	// A long grace period keeps each traffic change in StepTrafficRouting for seconds, so
	// the kill lands inside the change.
	ro.Spec.Strategy.Canary.TrafficRoutings = []v1beta1.TrafficRoutingRef{{
		Service: name, GracePeriodSeconds: 4, Gateway: &v1beta1.GatewayTrafficRouting{HTTPRouteName: ptr.To(name)},
	}}
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Create(ctx, ro, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Rollout: %v", err)
	}
	robWaitRollout(t, rc, ns, name, 30*time.Second, "phase Healthy before the release", s,
		func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseHealthy })
	robWaitControlled(t, c, ns, name, 30*time.Second)

	killAndRestart := func(when string) {
		t.Helper()
		if err := s.Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", when, err)
		}
		start := time.Now()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("restart after kill -9 %s: %v", when, err)
		}
		robWaitAuthenticated(t, rc, ns)
		t.Logf("kill -9 %s; restarted in %s", when, time.Since(start).Round(10*time.Millisecond))
	}
	routeState := func() (*gwv1.HTTPRoute, *corev1.Service, bool, error) {
		hr, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, false, err
		}
		svc, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, false, err
		}
		_, err = c.Client.CoreV1().Services(ns).Get(ctx, name+"-canary", metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, nil, false, err
		}
		return hr, svc, err == nil, nil
	}
	expectRoute := func(what string, timeout time.Duration, ok func(hr *gwv1.HTTPRoute, svc *corev1.Service, canary bool) (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		last := ""
		for time.Now().Before(deadline) {
			hr, svc, canary, err := routeState()
			if err == nil {
				done, why := ok(hr, svc, canary)
				if done {
					t.Logf("%s", what)
					return
				}
				last = why
			} else {
				last = err.Error()
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("timed out after %s waiting for %s: %s\nserver log tail:\n%s", timeout, what, last, s.LogTail(30))
	}
	weightsAre := func(stableWeight, canaryWeight int32) func(*gwv1.HTTPRoute, *corev1.Service, bool) (bool, string) {
		return func(hr *gwv1.HTTPRoute, _ *corev1.Service, canary bool) (bool, string) {
			refs := hr.Spec.Rules[0].BackendRefs
			if len(refs) != 2 || ptr.Deref(refs[0].Weight, -1) != stableWeight || string(refs[1].Name) != name+"-canary" || ptr.Deref(refs[1].Weight, -1) != canaryWeight || !canary {
				return false, fmt.Sprintf("backendRefs %s, canary Service present %v", jsonString(refs), canary)
			}
			return true, ""
		}
	}

	// --- 1. kill as step 2 changes the route ------------------------------------------------
	if _, err := robSetImage(ctx, c, ns, name, v2); err != nil {
		t.Fatalf("update the Deployment's image: %v", err)
	}
	robWaitRollout(t, rc, ns, name, 90*time.Second, "step 2 reached", s, func(ro *v1beta1.Rollout) bool {
		return ro.Status.Phase == v1beta1.RolloutPhaseProgressing && ro.Status.CurrentStepIndex == 2
	})
	atKill := robWaitFast(t, rc, ns, name, 60*time.Second, "step 2 StepTrafficRouting", s, func(ro *v1beta1.Rollout) (bool, error) {
		cs := ro.Status.CanaryStatus
		if cs == nil || cs.CurrentStepIndex != 2 {
			return false, fmt.Errorf("left step 2 before the kill: %s", robDescribe(ro))
		}
		if robStateRank[cs.CurrentStepState] > robStateRank[v1beta1.CanaryStepStateTrafficRouting] {
			return false, fmt.Errorf("passed step 2 StepTrafficRouting before the kill: %s", robDescribe(ro))
		}
		return cs.CurrentStepState == v1beta1.CanaryStepStateTrafficRouting, nil
	})
	hr, _, _, _ := routeState()
	killAndRestart(fmt.Sprintf("at %s with the route at %s", robDescribe(atKill), jsonString(hr.Spec.Rules[0].BackendRefs)))
	expectRoute("after the restart the route converged to step 2: 50/50", 30*time.Second, weightsAre(50, 50))

	// --- 2. kill once the route changed, within the grace period that follows -----------
	if ro, err := rc.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{}); err != nil || ro.Status.CurrentStepState != v1beta1.CanaryStepStateTrafficRouting {
		t.Fatalf("step 2 left StepTrafficRouting within its grace period: %v %s", err, robDescribe(ro))
	}
	killAndRestart("at step 2 StepTrafficRouting with the route at 50/50, within the grace period")
	robWaitRollout(t, rc, ns, name, 60*time.Second, "step 2 StepPaused after the restart", s, robAt(2, v1beta1.CanaryStepStatePaused))
	expectRoute("step 2 went on with the route as it was: 50/50", 10*time.Second, weightsAre(50, 50))

	// --- 3. kill while finalisation puts the route back ---------------------------------------
	promote := func() {
		t.Helper()
		if err := rc.RolloutV1beta1().RESTClient().Post().Namespace(ns).Resource("rollouts").Name(name).SubResource("promote").
			Body([]byte(`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutPromote"}`)).Do(ctx).Error(); err != nil {
			t.Fatalf("promote: %v", err)
		}
	}
	promote()
	atKill = robWaitFast(t, rc, ns, name, 90*time.Second, "a traffic stage of the finalisation", s, func(ro *v1beta1.Rollout) (bool, error) {
		cs := ro.Status.CanaryStatus
		if ro.Status.Phase != v1beta1.RolloutPhaseProgressing {
			return false, fmt.Errorf("the release ended before the kill: %s", robDescribe(ro))
		}
		return cs != nil && (cs.FinalisingStep == v1beta1.FinalisingStepRouteTrafficToStable || cs.FinalisingStep == v1beta1.FinalisingStepRemoveCanaryService), nil
	})
	hr, _, _, _ = routeState()
	killAndRestart(fmt.Sprintf("at %s with the route at %s", robDescribe(atKill), jsonString(hr.Spec.Rules[0].BackendRefs)))
	robWaitRollout(t, rc, ns, name, 90*time.Second, "the release to succeed after the restart", s, robSucceeded)
	expectRoute("after the restart the route, the Service and nothing else are as before the release", 30*time.Second,
		func(hr *gwv1.HTTPRoute, svc *corev1.Service, canary bool) (bool, string) {
			switch {
			case !apiequality.Semantic.DeepEqual(hr.Spec, route.Spec) || !apiequality.Semantic.DeepEqual(hr.Annotations, route.Annotations):
				return false, "route " + jsonString(hr.Spec) + " annotations " + jsonString(hr.Annotations)
			case !apiequality.Semantic.DeepEqual(svc.Spec.Selector, stable.Spec.Selector) || !apiequality.Semantic.DeepEqual(svc.Annotations, stable.Annotations):
				return false, fmt.Sprintf("Service selector %v annotations %v", svc.Spec.Selector, svc.Annotations)
			case canary:
				return false, "the canary Service is still there"
			}
			return true, ""
		})
}
