package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestTrafficIstio releases Deployments whose traffic goes through an Istio
// VirtualService (and, routing by subset, its DestinationRule): the real CRDs of
// istio.io/api, installed by hack/install-crds.sh, validate every object written; no Istio
// control plane runs, the objects are what is checked. Each scenario in its own
// namespace, all at once:
//
//	go test ./test/e2e/ -run 'TestTrafficIstio/(Canary|HeaderAbort)$' -v
func TestTrafficIstio(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Canary", trafficIstioCanary},
		{"Revert", trafficIstioRevert},
		{"HeaderAbort", trafficIstioHeaderAbort},
		{"SubsetDisable", trafficIstioSubsetDisable},
		{"SubsetSuccess", trafficIstioSubsetSuccess},
		{"Refused", trafficIstioRefused},
	}
	releaseEnvironment(t)
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() { t.Run(sc.name, sc.run) })
	}
	wg.Wait()
}

var (
	virtualServices  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	destinationRules = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

// istioScenario is a Deployment "web" of 4 behind Service "web", VirtualService "web" and,
// with subsets, DestinationRule "web".
type istioScenario struct {
	*scenario
	dyn            dynamic.Interface
	originalVS     *unstructured.Unstructured
	originalDR     *unstructured.Unstructured // nil without subsets
	originalStable *corev1.Service
}

// istioSpec reads a spec written in YAML (with %[1]s for the namespace) as the API server
// returns it (whole numbers int64).
func istioSpec(t *testing.T, ns, y string) map[string]any {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(strings.ReplaceAll(y, "NS", ns)))
	if err != nil {
		t.Fatalf("spec YAML: %v", err)
	}
	var out map[string]any
	if err := utiljson.Unmarshal(j, &out); err != nil {
		t.Fatalf("spec JSON: %v", err)
	}
	return out
}

func newIstioScenario(t *testing.T, steps []v1beta1.CanaryStep, vsSpec, drSpec string) *istioScenario {
	s := &istioScenario{scenario: newScenario(t)}
	dyn, err := dynamic.NewForConfig(s.env.c.Config)
	if err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	s.dyn = dyn
	s.givenDeployment("web", 4)
	s.originalStable = s.givenStableService()
	create := func(gvr schema.GroupVersionResource, kind, spec string) *unstructured.Unstructured {
		ctx, cancel := s.ctx()
		defer cancel()
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": kind, "spec": istioSpec(t, s.ns, spec),
		}}
		u.SetName("web")
		u.SetLabels(map[string]string{"team": "shop"})
		u.SetAnnotations(map[string]string{"owner": "shop-team"})
		out, err := dyn.Resource(gvr).Namespace(s.ns).Create(ctx, u, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s web: %v", kind, err)
		}
		return out
	}
	refs := []v1beta1.ObjectRef{{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web"}}
	s.originalVS = create(virtualServices, "VirtualService", vsSpec)
	if drSpec != "" {
		s.originalDR = create(destinationRules, "DestinationRule", drSpec)
		refs = append(refs, v1beta1.ObjectRef{APIVersion: "networking.istio.io/v1beta1", Kind: "DestinationRule", Name: "web"})
	}
	s.givenRollout(steps, func(ro *v1beta1.Rollout) {
		ro.Spec.Strategy.Canary.TrafficRoutings = []v1beta1.TrafficRoutingRef{{Service: "web", GracePeriodSeconds: 1, CustomNetworkRefs: refs}}
	})
	return s
}

func (s *istioScenario) get(ctx context.Context, gvr schema.GroupVersionResource) (*unstructured.Unstructured, error) {
	return s.dyn.Resource(gvr).Namespace(s.ns).Get(ctx, "web", metav1.GetOptions{})
}

// weightSums are the sums of the destination weights of each http route that has more
// than one destination.
func weightSums(spec map[string]any) []int64 {
	var sums []int64
	http, _ := spec["http"].([]any)
	for _, r := range http {
		dests, _ := r.(map[string]any)["route"].([]any)
		if len(dests) < 2 {
			continue
		}
		var sum int64
		for _, d := range dests {
			w, _ := d.(map[string]any)["weight"].(int64)
			sum += w
		}
		sums = append(sums, sum)
	}
	return sums
}

// expectRouted waits until the VirtualService's spec (and the DestinationRule's, when
// given) is exactly as written in YAML, every weighted route sums to 100, and the Services
// are as the step needs them (the stable one pinned unless a subset pins the revision).
func (s *istioScenario) expectRouted(what, vsSpec, drSpec string) {
	s.t.Helper()
	ro := s.rollout()
	cs := ro.Status.CanaryStatus
	subst := func(y string) string {
		return strings.NewReplacer("STABLE", cs.StableRevision, "CANARY", cs.PodTemplateHash).Replace(y)
	}
	wantVS := istioSpec(s.t, s.ns, subst(vsSpec))
	s.eventually(waitTimeout, what, func(ctx context.Context) (bool, string) {
		vs, err := s.get(ctx, virtualServices)
		if err != nil {
			return false, err.Error()
		}
		if ok, msg := changedObject("VirtualService", wantVS, vs, s.originalVS); !ok {
			return false, msg
		}
		for _, sum := range weightSums(wantVS) {
			if sum != 100 {
				return false, fmt.Sprintf("weights sum to %d in %s", sum, jsonString(vs.Object["spec"]))
			}
		}
		if drSpec != "" {
			dr, err := s.get(ctx, destinationRules)
			if err != nil {
				return false, err.Error()
			}
			if ok, msg := changedObject("DestinationRule", istioSpec(s.t, s.ns, subst(drSpec)), dr, s.originalDR); !ok {
				return false, msg
			}
		}
		stable, canary, err := s.observeServices(ctx)
		if err != nil {
			return false, err.Error()
		}
		return servicesRouted(stable, canary, cs, drSpec == "")
	})
	s.logf("%s", what)
}

// changedObject checks an Istio object mid-release: its spec is want, its labels are as
// before, and its annotations are as before plus the record of the original spec, which
// holds exactly the spec as it was.
func changedObject(what string, want map[string]any, got, original *unstructured.Unstructured) (bool, string) {
	raw, ok := got.GetAnnotations()[originalSpecAnnotation]
	if !ok {
		return false, what + " has no annotation " + originalSpecAnnotation
	}
	var recorded map[string]any
	if err := utiljson.Unmarshal([]byte(raw), &recorded); err != nil {
		return false, fmt.Sprintf("%s annotation %s: %v", what, originalSpecAnnotation, err)
	}
	if ok, msg := sameObject(what+" (recorded original)", original.Object["spec"], recorded, original, original); !ok {
		return false, msg
	}
	annotations := maps.Clone(original.GetAnnotations())
	annotations[originalSpecAnnotation] = raw
	return sameObject(what, want, got.Object["spec"], &metav1.ObjectMeta{Labels: original.GetLabels(), Annotations: annotations}, got)
}

// originalSpecAnnotation records, on a routing object a release changed, its spec before.
const originalSpecAnnotation = "rollout.kruise.io/original-spec"

// expectRestored waits until the VirtualService, the DestinationRule and the stable
// Service are exactly as before the release (spec, labels, annotations) and the canary
// Service is gone.
func (s *istioScenario) expectRestored(what string) {
	s.t.Helper()
	s.eventually(waitTimeout, what, func(ctx context.Context) (bool, string) {
		for _, o := range []struct {
			gvr      schema.GroupVersionResource
			original *unstructured.Unstructured
		}{{virtualServices, s.originalVS}, {destinationRules, s.originalDR}} {
			if o.original == nil {
				continue
			}
			got, err := s.get(ctx, o.gvr)
			if err != nil {
				return false, err.Error()
			}
			if ok, msg := sameObject(o.original.GetKind(), o.original.Object["spec"], got.Object["spec"], o.original, got); !ok {
				return false, msg
			}
		}
		stable, canary, err := s.observeServices(ctx)
		if err != nil {
			return false, err.Error()
		}
		return servicesRestored(s.originalStable, stable, canary)
	})
	s.logf("%s", what)
}

const istioByHost = `
hosts: [shop.example.com]
gateways: [public]
http:
- name: primary
  match: [{uri: {prefix: /}}]
  timeout: 5s
  route: [{destination: {host: web.NS.svc.cluster.local, port: {number: 80}}}]
`

func istioWeighted(stable, canary int) string {
	return fmt.Sprintf(`
hosts: [shop.example.com]
gateways: [public]
http:
- name: primary
  match: [{uri: {prefix: /}}]
  timeout: 5s
  route:
  - {destination: {host: web.NS.svc.cluster.local, port: {number: 80}}, weight: %d}
  - {destination: {host: web-canary.NS.svc.cluster.local, port: {number: 80}}, weight: %d}
`, stable, canary)
}

// trafficIstioCanary: 5% → 50% → 100% by host, the VirtualService exact at every step.
func trafficIstioCanary(t *testing.T) {
	s := newIstioScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("50%", "50%"), trafficStep("100%", "100%")}, istioByHost, "")
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 5% to web-canary", istioWeighted(95, 5), "")
	s.expectStatusTraffic(ptr.To[int32](5), 0)
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 2: 50% to web-canary", istioWeighted(50, 50), "")
	s.promote()
	s.expectSucceeded()
	s.expectRestored("after success: VirtualService and Services as before, canary Service gone")
	s.expectPods(pods{"app:v2": 4})
}

// trafficIstioRevert: reverting the workload to the stable revision puts the
// VirtualService and the Services back.
func trafficIstioRevert(t *testing.T) {
	s := newIstioScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, istioByHost, "")
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 5% to web-canary", istioWeighted(95, 5), "")
	s.updateImage(stableImage)
	s.expectRestored("after the revert: VirtualService and Services as before")
	s.expectPods(pods{stableImage: 4})
}

// trafficIstioHeaderAbort: header (exact, regex) and query matches with a header modifier
// become a route ahead; abort puts the VirtualService back.
func trafficIstioHeaderAbort(t *testing.T) {
	first := step("1")
	first.Matches = []v1beta1.HttpRouteMatch{
		{Headers: []v1beta1.HTTPHeaderMatch{{Name: "x-canary", Value: "on"}}},
		{Headers: []v1beta1.HTTPHeaderMatch{{Type: ptr.To("RegularExpression"), Name: "x-user", Value: "^qa-.*"}},
			QueryParams: []v1beta1.HTTPQueryParamMatch{{Name: "beta", Value: "1"}}},
	}
	first.RequestHeaderModifier = &v1beta1.HTTPHeaderFilter{Set: []v1beta1.HTTPHeader{{Name: "x-release", Value: "canary"}}}
	vs := `
hosts: [shop.example.com]
http:
- name: primary
  match: [{uri: {prefix: /}}]
  route: [{destination: {host: web}}]
`
	s := newIstioScenario(t, []v1beta1.CanaryStep{first, trafficStep("100%", "100%")}, vs, "")
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: matching requests to web-canary with x-release: canary", `
hosts: [shop.example.com]
http:
- name: primary-canary
  match:
  - {uri: {prefix: /}, headers: {x-canary: {exact: "on"}}}
  - {uri: {prefix: /}, headers: {x-user: {regex: "^qa-.*"}}, queryParams: {beta: {exact: "1"}}}
  route: [{destination: {host: web-canary}, headers: {request: {set: {x-release: canary}}}}]
- name: primary
  match: [{uri: {prefix: /}}]
  route: [{destination: {host: web}}]
`, "")
	s.expectStatusTraffic(nil, 2)
	s.abort("e2e: traffic first")
	s.expectRestored("after abort: VirtualService and Services as before")
	s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
	s.expectPods(pods{stableImage: 4})
}

const (
	istioBySubset = `
hosts: [web]
http:
- route: [{destination: {host: web, subset: stable}}]
`
	istioSubsets = `
host: web
trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
subsets: [{name: stable, labels: {app: web}}]
`
	istioSubsetRouted = `
hosts: [web]
http:
- route:
  - {destination: {host: web, subset: stable}, weight: 95}
  - {destination: {host: web, subset: stable-canary}, weight: 5}
`
	istioSubsetsRouted = `
host: web
trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
subsets:
- {name: stable, labels: {app: web, pod-template-hash: STABLE}}
- {name: stable-canary, labels: {pod-template-hash: CANARY}}
`
)

// trafficIstioSubsetDisable: a VirtualService routing by subset gets a canary subset in
// its DestinationRule (the stable Service is left selecting both revisions); disabling
// the Rollout puts both objects back.
func trafficIstioSubsetDisable(t *testing.T) {
	s := newIstioScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, istioBySubset, istioSubsets)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 5% to the canary subset", istioSubsetRouted, istioSubsetsRouted)
	s.w.allowAll() // the Deployment's own strategy takes over
	s.updateRollout(func(ro *v1beta1.Rollout) { ro.Spec.Disabled = true })
	s.expectRestored("after disabling: VirtualService, DestinationRule and Services as before")
	s.waitForPhase(v1beta1.RolloutPhaseDisabled, "")
}

// trafficIstioSubsetSuccess: the same through to success.
func trafficIstioSubsetSuccess(t *testing.T) {
	s := newIstioScenario(t, []v1beta1.CanaryStep{trafficStep("1", "5%"), trafficStep("100%", "100%")}, istioBySubset, istioSubsets)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectRouted("step 1: 5% to the canary subset", istioSubsetRouted, istioSubsetsRouted)
	s.promote()
	s.expectSucceeded()
	s.expectRestored("after success: VirtualService, DestinationRule and Services as before")
	s.expectPods(pods{"app:v2": 4})
}

// trafficIstioRefused: a customNetworkRef of a kind the controller cannot route through is
// refused at admission with a 422 that names the field.
func trafficIstioRefused(t *testing.T) {
	s := newScenario(t)
	ctx, cancel := s.ctx()
	defer cancel()
	ro := &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: s.ns},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{
				Steps: []v1beta1.CanaryStep{trafficStep("1", "5%")},
				TrafficRoutings: []v1beta1.TrafficRoutingRef{{Service: "web", CustomNetworkRefs: []v1beta1.ObjectRef{
					{APIVersion: "networking.istio.io/v1", Kind: "Gateway", Name: "web"},
				}}},
			}},
		},
	}
	_, err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Create(ctx, ro, metav1.CreateOptions{})
	const field = "spec.strategy.canary.trafficRoutings[0].customNetworkRefs[0].kind"
	switch {
	case !apierrors.IsInvalid(err):
		t.Errorf("got %v, want 422 Invalid", err)
	case !strings.Contains(err.Error(), field):
		t.Errorf("%v does not name %s", err, field)
	default:
		t.Logf("refused: %v", err)
	}
}
